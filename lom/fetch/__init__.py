"""Multimodal robot-arm benchmarks in gymnasium-robotics' Fetch scenes (Reach, Push, PickAndPlace): the tasks and
their scoring wrapper (world), the scripted demonstrators (behaviour), the datasets, generated once and cached
(dataset), their gymnasium envs (env), `python -m lom.fetch.modes`, which prints each dataset's modes, and
`python -m lom.fetch.plot`, which draws them and the strategies trained agents follow (strategies).
docs/datasets.md describes them."""
