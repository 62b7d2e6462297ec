"""Resume: the seeds' checkpoints found and checked against this run (the one compatibility check), then loaded."""

from __future__ import annotations

import dataclasses
import os

from lom.config import WEIGHT_RULE_NUMBERS, LOMHyperParams, TrainConfig
from lom.errors import LOMError
from lom.training import checkpoint


def comparable_config(cfg: TrainConfig) -> dict:
    """The settings that change a run's numbers (not where it runs or how it is logged)."""
    ignored = {"resume", "device", "enable_wandb", "compile", "cuda_graphs", "log_every"}
    if cfg.agent != "LOM":  # LOM's values are recorded for every agent, but only LOM's numbers use them
        ignored |= {f.name for f in dataclasses.fields(LOMHyperParams)}
        ignored |= {"weight_rule", *WEIGHT_RULE_NUMBERS.values()}
    else:  # the numbers of the weight rules not in use
        ignored |= {n for rule, n in WEIGHT_RULE_NUMBERS.items() if rule != cfg.weight_rule} - {"beta"}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignored}


def load_current(path: str | os.PathLike, cfg: TrainConfig, map_location="cpu") -> dict:
    """A checkpoint of `cfg`'s run, refused if older code wrote it: another layout, a setting it does not record, or
    every GPU's RNG state."""
    state = checkpoint.load(path, map_location)
    if (state.get("layout") != checkpoint.LAYOUT or not comparable_config(cfg).keys() <= state["config"].keys()
            or isinstance(state["rng"].get("cuda"), list)):
        raise LOMError(f"{path} was written by an older version of this code: use that version (its commit is in "
                       "git log), or train the run again without --resume")
    return state
