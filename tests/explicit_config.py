"""A TrainConfig with every per-dataset value given, for tests that build agents directly: nothing is left to the
dataset's schedule or to the preset, whose defaults other work may change."""

from __future__ import annotations

import dataclasses

from lom.config import TrainConfig

EXPLICIT = dict(
    training_steps=1000, gmm_steps=1000, eval_every=1000, device="cpu", critic="expectile", weight_baseline="value",
    weight_rule="fixed", expectile=0.7, num_components=3, num_critics=2, beta=5.0, ac_rand=0.0, smooth_noise=0.2,
    weight_clip=50.0, min_component_weight=0.0, discount=0.99, tau=0.005, gmm_batch_size=256, critic_batch_size=256,
    mode_batch_size=256, actor_batch_size=256, hidden_width=8, gmm_hidden_width=8,
)


def explicit_config(**overrides) -> TrainConfig:
    cfg = TrainConfig(**{**EXPLICIT, **overrides})
    assert not [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None and f.name not in
                ("dataset_path", "gmm_path")], "a value would come from the dataset's defaults"
    cfg.validate()
    return cfg
