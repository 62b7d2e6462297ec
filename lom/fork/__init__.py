"""The built-in benchmark, multimodal-fork-v0, in one place: its world (dynamics and rewards), the behaviour that
makes its dataset, the dataset itself (written once, then cached), the gymnasium env that evaluates a policy on
it, and its figure (`python -m lom.fork.plot`). docs/datasets.md describes it."""
