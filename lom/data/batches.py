"""The dataset as device-resident tensors, sampled there, with the state standardisation computed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lom.data.transitions import return_range_scale
from lom.data.types import Transitions
from lom.seeds import SeedStreams

# Floor on the per-dimension std so constant state features do not divide by ~0.
MIN_OBS_STD = 1e-3


@dataclass
class Batch:
    """One batch per seed: every field has the seed axis first, (S, B, ...)."""

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    next_act: torch.Tensor
    done: torch.Tensor
    idx: torch.Tensor  # row numbers in the dataset, (S, B), for per-row caches


class ObservationNormalizer(torch.nn.Module):
    """s ↦ (s − mean) / std with the dataset's statistics; identity when standardisation is off."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, observations: np.ndarray, enabled: bool) -> "ObservationNormalizer":
        dim = observations.shape[1]
        if not enabled:
            return cls(torch.zeros(dim), torch.ones(dim))
        obs = observations.astype(np.float64)
        return cls(torch.as_tensor(obs.mean(0), dtype=torch.float32),
                   torch.as_tensor(np.maximum(obs.std(0), MIN_OBS_STD), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class DeviceDataset:
    """All transitions on one device, states already standardised; batches are index draws on that device."""

    def __init__(self, transitions: Transitions, normalizer: ObservationNormalizer, device: torch.device,
                 reward_scale: float = 1.0):
        def put(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x, dtype=torch.float32, device=device)

        normalizer = normalizer.to(device)
        self.device = device
        self.obs = normalizer(put(transitions.observations))
        self.next_obs = normalizer(put(transitions.next_observations))
        self.act = put(transitions.actions)
        self.next_act = put(transitions.next_actions)
        self.rew = put(transitions.rewards) * reward_scale
        self.done = put(transitions.terminals)
        self.size = len(transitions)
        self.obs_dim, self.act_dim = self.obs.shape[1], self.act.shape[1]
        self.normalizer, self.reward_scale = normalizer, reward_scale

    @classmethod
    def prepared(cls, transitions: Transitions, device: torch.device, normalise: bool,
                 return_range: float | None) -> "DeviceDataset":
        """The transitions on `device` with their own state standardisation (`normalizer`: the dataset's mean and std,
        or none) and, given `return_range`, rewards scaled so that the dataset's episode returns span it
        (`reward_scale`)."""
        normalizer = ObservationNormalizer.fit(transitions.observations, normalise).to(device)
        reward_scale = return_range_scale(transitions, return_range) if return_range is not None else 1.0
        return cls(transitions, normalizer, device, reward_scale)

    def __len__(self) -> int:
        return self.size

    @staticmethod
    def rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """x's rows at idx (S, B): (S, B, ...)."""
        # index_select, not x[idx]: the same rows, measured 3-5x faster on CPU for these batch sizes.
        return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])

    def gather(self, idx: torch.Tensor) -> Batch:
        fields = (self.obs, self.act, self.rew, self.next_obs, self.next_act, self.done)
        return Batch(*(self.rows(x, idx) for x in fields), idx)

    def draw(self, rng: SeedStreams, batch_size: int) -> torch.Tensor:
        """Row numbers of one batch per seed, (S, B), drawn uniformly with replacement from each seed's stream."""
        return rng.randint(self.size, batch_size)

    def sample(self, rng: SeedStreams, batch_size: int) -> Batch:
        return self.gather(self.draw(rng, batch_size))

    def sample_many(self, rng: SeedStreams, batch_sizes: Sequence[int]) -> list[Batch]:
        """Independent batches for one training step, drawn with a single index draw and a single gather."""
        whole = self.sample(rng, sum(batch_sizes))
        fields = [torch.split(getattr(whole, name), list(batch_sizes), dim=1) for name in Batch.__dataclass_fields__]
        return [Batch(*parts) for parts in zip(*fields)]
