"""Each baseline's hyper-parameters: one typed config per agent, a help line per field.

`python train.py --agent IQL --help` lists IQL's as flags named `--iql_<field>`; a run records the values it set in
config.json's `agent_hp` and every value it used in `hyperparameters`. LOM's settings are `TrainConfig`'s
(lom/config.py), where its presets fill them per dataset. This module loads no torch, so the command line is built
without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lom.errors import LOMError


def hp(default, help: str, low: float = 0.0, high: float | None = None):
    """A hyper-parameter: its default, its --help line and the range it must lie in (`low` inclusive for
    floats, `high` exclusive; integers must be ≥ 1)."""
    return dataclasses.field(default=default, metadata={"help": help, "low": low, "high": high})


def check(config, prefix: str) -> None:
    """Refuse a value outside its field's range, naming the flag (`--<prefix>_<field>`)."""
    for f in dataclasses.fields(config):
        value, low, high = getattr(config, f.name), f.metadata["low"], f.metadata["high"]
        if isinstance(value, int):
            ok, wanted = value >= 1, "a positive whole number"
        else:
            ok = value >= low and (high is None or value < high)
            wanted = f"in [{low:g}, {high:g})" if high is not None else f"at least {low:g}"
        if not ok:
            raise LOMError(f"--{prefix}_{f.name} must be {wanted}, got {value}")


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning: a Gaussian policy fit by maximum likelihood on every dataset action."""

    lr: float = hp(3e-4, "Adam learning rate of the policy")
    batch_size: int = hp(256, "transitions per step")


@dataclass(frozen=True)
class IQLConfig:
    """IQL's locomotion settings (Kostrikov et al., 2022)."""

    expectile: float = hp(0.7, "expectile τ of the value function's loss (0.5: the mean; towards 1: the best action)",
                          low=0.0, high=1.0)
    beta: float = hp(3.0, "inverse temperature β of the advantage weight exp(β·A)")
    weight_clip: float = hp(100.0, "upper clip of the advantage weight")
    num_critics: int = hp(2, "Q networks in the ensemble (their minimum is the target)")
    lr: float = hp(3e-4, "Adam learning rate of every network (the actor's decays by a cosine schedule)")
    batch_size: int = hp(256, "transitions per step, for the critic and the actor each")


@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC's settings (Fujimoto & Gu, 2021)."""

    alpha: float = hp(2.5, "α: weight of the Q term against behaviour cloning (λ = α / mean|Q|)")
    policy_noise: float = hp(0.2, "std of the target policy's smoothing noise")
    noise_clip: float = hp(0.5, "clip of that noise")
    policy_delay: int = hp(2, "critic updates per actor and target update")
    num_critics: int = hp(2, "Q networks in the ensemble (their minimum is the target)")
    lr: float = hp(3e-4, "Adam learning rate of the actor and the critics")
    batch_size: int = hp(256, "transitions per step")
