"""Stacked seeds: S independent runs of one agent trained as one model with a leading seed axis.

Every network parameter, optimiser moment and batch has shape (S, ...), and slice s is seed s's run and nothing
else: its initial weights and every random draw come from seed s's own generator, its losses are averaged over its
own batch, and the losses are summed over seeds before the backward pass (so each seed's gradient is its own loss's
gradient). So a seed trains identically, to the bit, whatever other seeds share its process. A plain `--seed N`
run is the case S = 1: it matches the same seed trained beside others to rounding only (a batched matmul over one
slice can take another kernel than over several, which differs in the last bit, and training amplifies that).

A seed's run folder holds its slice alone (`slice_seed`), the same files a single run writes; `stack_seeds` puts
slices back together on resume. The rule that makes this generic: a tensor of one or more dimensions in an agent's
state has the seed axis first; a 0-d tensor (a step count, IQL's learning rate) and anything not a tensor is shared.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import torch


class SeedStreams:
    """One random stream per stacked seed, on the device the agent trains on.

    Draws come back with the seed axis first; seed s's values depend on seed s's stream only, so a seed trains the
    same whatever seeds share its process. `seeds=None` (agents built directly, as tests do) is one seed drawing
    from torch's global generator. Network initialisation draws from the CPU generators (`init_generators`),
    before the networks move to their device; on the CPU training continues on the same generators.
    """

    def __init__(self, seeds: Sequence[int] | None = None):
        self.seeds = None if seeds is None else tuple(seeds)
        self.device = torch.device("cpu")
        self.init_generators = None if seeds is None else [torch.Generator().manual_seed(s) for s in seeds]
        self.generators = self.init_generators

    @property
    def count(self) -> int:
        return 1 if self.seeds is None else len(self.seeds)

    def to(self, device: torch.device) -> None:
        """Train on `device`: its generators are seeded with the seeds (the CPU's are the init generators)."""
        device = torch.device(device)
        if device == self.device or self.seeds is None:
            self.device = device
            return
        self.device = device
        self.generators = (self.init_generators if device.type == "cpu"
                           else [torch.Generator(device).manual_seed(s) for s in self.seeds])

    def randint(self, high: int, n: int) -> torch.Tensor:
        """(S, n) integers in [0, high), uniform, on the device."""
        if self.generators is None:
            return torch.randint(high, (1, n), device=self.device)
        return torch.stack([torch.randint(high, (n,), generator=g, device=self.device) for g in self.generators])

    def normal_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like `x` (seed axis first)."""
        if self.generators is None:
            return torch.randn_like(x)
        return torch.stack([torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
                            for g in self.generators])

    def states(self) -> list[dict] | None:
        """Each seed's generator state and the kind of device it draws on (None: the global generator's, which
        checkpoints save anyway)."""
        if self.generators is None:
            return None
        return [{"device": self.device.type, "state": g.get_state()} for g in self.generators]

    def load_states(self, states: Sequence[dict]) -> None:
        """Continue each seed's stream. A state saved on another kind of device (a CPU run resumed on a GPU) does
        not fit this device's generator: the stream is then seeded from a hash of it, deterministic and fresh."""
        if self.generators is None:
            return
        for generator, saved in zip(self.generators, states):
            if saved["device"] == self.device.type:
                generator.set_state(saved["state"])
            else:
                digest = hashlib.sha256(saved["state"].numpy().tobytes()).digest()
                generator.manual_seed(int.from_bytes(digest[:8], "little"))


def slice_seed(tree: Any, index: int) -> Any:
    """Seed `index`'s part of a (nested) agent state: tensors with a seed axis keep only its slice (still 1 long)."""
    if isinstance(tree, torch.Tensor):
        return tree[index:index + 1].clone() if tree.dim() else tree.clone()
    if isinstance(tree, dict):
        return {key: slice_seed(value, index) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(slice_seed(value, index) for value in tree)
    return tree


def stack_seeds(trees: Sequence[Any]) -> Any:
    """The inverse of `slice_seed`: per-seed states (each from a run of one seed or a slice) as one stacked state."""
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(trees)) if first.dim() else first
    if isinstance(first, dict):
        return {key: stack_seeds([tree[key] for tree in trees]) for key in first}
    if isinstance(first, (list, tuple)):
        return type(first)(stack_seeds(parts) for parts in zip(*trees))
    return first


def seed_mean(x: torch.Tensor) -> torch.Tensor:
    """Each seed's mean over everything but the seed axis: (S, ...) -> (S,)."""
    return x.flatten(1).mean(dim=1)
