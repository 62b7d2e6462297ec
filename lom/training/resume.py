"""The seeds' checkpoints: what one holds besides the networks (Progress), all saved as one set, found again, checked
against this run (the one compatibility check, `load_current`, and the settings) and restored."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Sequence

import torch

from lom.agents import Agent
from lom.config import MIXTURE_AGENTS, WEIGHT_RULE_NUMBERS, LOMHyperParams, TrainConfig
from lom.errors import LOMError
from lom.run_folder import CHECKPOINT
from lom.seeds import slice_seed, stack_seeds
from lom.training import checkpoint
from lom.training.loss_window import LossWindow
from lom.training.seed_run import SeedRun


@dataclass
class Progress:
    """What a seed's checkpoint holds besides the networks: where the run is and what it has measured so far."""

    phase: str = "pretrain"
    step: int = 0  # steps completed in `phase`
    metrics: list[dict] = field(default_factory=list)
    pending_losses: dict = field(default_factory=dict)  # loss sums since the last evaluation, and their counts
    wall_time_s: float = 0.0


def comparable_config(cfg: TrainConfig) -> dict:
    """The settings that change a run's numbers (not where it runs or how it is logged)."""
    ignored = {"resume", "device", "enable_wandb", "compile", "cuda_graphs", "log_every"}
    if cfg.agent != "LOM":  # LOM's values are recorded for every agent, but only LOM's numbers use them (and MDN's N)
        ignored |= {f.name for f in dataclasses.fields(LOMHyperParams)} - (
            {"num_components"} if cfg.agent in MIXTURE_AGENTS else set())
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


def saved_checkpoints(runs: Sequence[SeedRun]) -> list[dict] | None:
    """Every seed's checkpoint, or None when no seed has one; refused if older code wrote one, if the seeds stopped
    at different points, or if a seed ran with other settings."""
    paths = [run.run_dir / CHECKPOINT for run in runs]
    found = [path.is_file() for path in paths]
    if not any(found):
        return None
    # Loaded on the CPU: the RNG states must stay there; load_state_dict puts the rest on the device.
    states = [load_current(path, run.cfg) if ok else None for path, ok, run in zip(paths, found, runs)]
    places = {run.cfg.seed: (st["progress"]["phase"], st["progress"]["step"]) if st else None
              for run, st in zip(runs, states)}
    if len(set(places.values())) > 1:
        where = ", ".join(f"seed {seed} at {place[0]} step {place[1]}" if place else f"seed {seed} without one"
                          for seed, place in places.items())
        raise LOMError(f"--resume: these seeds stopped at different points ({where}); resume each in its own "
                       "process (--seed N --resume)")
    for run, state in zip(runs, states):
        changed = sorted(k for k, v in comparable_config(run.cfg).items() if state["config"][k] != v)
        if changed:
            raise LOMError(f"--resume: the run in {run.run_dir} was started with other values of "
                           f"{', '.join(changed)}; use the original flags, or another --group / --log_path for a "
                           "new run")
    return states


def restore(states: list[dict], agent: Agent, window: LossWindow, runs: Sequence[SeedRun],
            device: torch.device) -> Progress:
    """The saved networks, optimisers, metrics, pending losses and RNG states put back; where the run stopped."""
    agent.load_training_state(stack_seeds([state["agent"] for state in states]))
    progress = [Progress(**state["progress"]) for state in states]
    for i, (run, p) in enumerate(zip(runs, progress)):
        run.metrics = p.metrics
        window.sums[i], window.counts[i] = p.pending_losses["sums"], p.pending_losses["counts"]
    checkpoint.restore_rng(states[0]["rng"], device)
    agent.rng.load_states([state["rng"]["seed_stream"] for state in states])
    return progress[0]


def save(name: str, runs: Sequence[SeedRun], agent: Agent, window: LossWindow, normalizer: torch.nn.Module,
         device: torch.device, at: Progress) -> None:
    """Each seed's slice of the training state into its own run folder as `name`, all seeds as one set; `at`: the
    phase, step and wall time (each seed's metrics and pending losses are added here)."""
    agent_state, streams, rng = agent.training_state(), agent.rng.states(), checkpoint.capture_rng(device)
    states = {}
    for i, run in enumerate(runs):
        pending = {"sums": window.sums[i], "counts": window.counts[i]}
        states[run.run_dir / name] = {
            "layout": checkpoint.LAYOUT,
            "config": comparable_config(run.cfg),
            "agent": slice_seed(agent_state, i),
            "normalizer": normalizer.state_dict(),
            "progress": dataclasses.asdict(dataclasses.replace(at, metrics=run.metrics, pending_losses=pending)),
            "rng": {**rng, "seed_stream": streams[i]},
        }
    checkpoint.save_together(states, {"phase": at.phase, "step": at.step} if name == CHECKPOINT else None)
