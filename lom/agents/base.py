"""What every agent offers the trainer: update steps that return loss tensors, and a deterministic policy."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from lom.data.batches import DeviceDataset
from lom.networks import EnsembleMLP, OneSeed
from lom.seeds import SeedStreams

Losses = dict[str, torch.Tensor]
# Optimiser settings that choose how an update runs, not what it computes: a resumed run keeps its own.
KERNEL_FLAGS = ("capturable", "foreach", "fused", "differentiable")


class Agent(nn.Module):
    """An offline-RL agent: its networks are submodules, its optimisers live in `self.optimizers`.

    Loss names are "<network>/<loss>" so a non-finite value can be traced to the network that produced it.
    Update steps return one value per seed, (S,) tensors, without reading them, so the training loop never waits
    on the device. Every network has the seed axis first (lom/seeds.py); `self.rng` holds the seeds' streams and
    follows the parameters to their device.
    """

    name: str = ""
    # Steps of a first phase trained before the main loop (LOM's behaviour model); 0 for agents without one.
    pretrain_steps: int = 0

    def __init__(self, seeds=None):
        super().__init__()
        self.rng = SeedStreams(seeds)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def seed_count(self) -> int:
        return self.rng.count

    def _apply(self, fn, recurse=True):
        # .to(device) / .cuda() / .cpu(): the seeds' streams move with the parameters they train.
        out = super()._apply(fn, recurse)
        self.rng.to(next(self.parameters()).device)
        return out

    def pretrain_step(self, data: DeviceDataset) -> Losses:
        raise NotImplementedError(f"{self.name} has no pre-training phase")

    def finish_pretraining(self, data: DeviceDataset) -> None:
        """Called once when pre-training ends (or when resuming past it)."""

    def train_step(self, data: DeviceDataset) -> Losses:
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic evaluation action for standardised states, (S, B, O) -> (S, B, A)."""
        raise NotImplementedError

    @torch.no_grad()
    def act_single(self, obs: torch.Tensor) -> torch.Tensor:
        """`act` of a one-seed agent (a run folder's, see lom.evaluate) for standardised states (B, O) -> (B, A)."""
        return self.act(obs.unsqueeze(0)).squeeze(0)

    def policy_network(self) -> nn.Module:
        """The network `act` evaluates for a one-seed agent, standardised states (B, O) -> actions in [-1, 1]
        (B, A): what `lom.export` writes out. Every agent here keeps it as `actor`."""
        return OneSeed(self.actor)

    def hyperparameters(self) -> dict:
        return dataclasses.asdict(self.hp)

    def compile_networks(self) -> None:
        """torch.compile every network in place (parameter names, hence checkpoints, are unchanged)."""
        for module in self.modules():
            if isinstance(module, (nn.Sequential, EnsembleMLP)):
                module.compile()

    def training_state(self) -> dict:
        return {
            "networks": self.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["networks"])
        for key, opt in self.optimizers.items():
            live = [dict(group) for group in opt.param_groups]
            saved = state["optimizers"][key]
            # How the update runs is this run's choice (a checkpoint from an eager CPU run may resume captured on a
            # GPU), so the saved groups take the live kernel flags before loading.
            saved = {**saved, "param_groups": [{**group, **{k: now[k] for k in KERNEL_FLAGS if k in now}}
                                               for group, now in zip(saved["param_groups"], live)]}
            opt.load_state_dict(saved)
            # A tensor learning rate (IQL's CosineDecay) must stay the tensor its schedule advances, not a copy.
            for group, now in zip(opt.param_groups, live):
                if isinstance(now["lr"], torch.Tensor):
                    group["lr"] = now["lr"]


class CountsUpdates:
    """Mixin for modules that act every n-th update (n = `period`): the counter is saved with their state_dict.
    A captured step (lom/training/captured_steps.py) records one graph per phase of the period and advances the
    counter itself."""

    updates: int = 0
    period: int = 1

    def get_extra_state(self):
        return {"updates": self.updates}

    def set_extra_state(self, state):
        self.updates = state["updates"]


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One step on the seeds' losses (S,): their sum's gradient is, slice by slice, each seed's own."""
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    optimizer.step()
