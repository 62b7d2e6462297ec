"""Losses kept on the device between reads: the hot loop only launches work, and reading the window back once
every `log_every` steps is the one host sync, which is also where non-finite losses are caught."""

from __future__ import annotations

from pathlib import Path

import torch


class LossWindow:
    """Per-step losses of every seed kept on the device; flushed (one host sync) into each seed's running sums every
    `capacity` steps.

    A step may report only some of the losses (TD3+BC's actor loss comes every 2nd step): each loss's mean is over
    the steps that reported it, and which losses a row holds is kept on the host, so no step needs a sync.
    """

    def __init__(self, capacity: int, device: torch.device, seeds: int = 1):
        self.capacity, self.device, self.seeds = capacity, device, seeds
        self.names: list[str] = []
        self.rows = None
        self.reported: list[tuple[int, ...]] = []  # per row in the window: the columns its step reported
        self.columns: dict[tuple[str, ...], tuple[tuple[int, ...], torch.Tensor]] = {}
        self.first_step = 0
        self.sums: list[dict[str, float]] = [{} for _ in range(seeds)]
        self.counts: list[dict[str, int]] = [{} for _ in range(seeds)]

    def add(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        """`losses`: one value per seed, (S,) tensors."""
        names = tuple(losses)
        if self.rows is None or not set(names) <= set(self.names):
            self.flush()
            self.names = [*self.names, *(n for n in names if n not in self.names)]
            self.rows = torch.zeros(self.capacity, len(self.names), self.seeds, device=self.device)
            self.columns = {}
        if names not in self.columns:
            cols = tuple(self.names.index(n) for n in names)
            self.columns[names] = (cols, torch.tensor(cols, device=self.device))
        cols, index = self.columns[names]
        if not self.reported:
            self.first_step = step
        values = torch.stack(list(losses.values())).to(self.rows.dtype)
        if cols == tuple(range(len(self.names))):
            self.rows[len(self.reported)] = values
        else:
            self.rows[len(self.reported)].index_copy_(0, index, values)
        self.reported.append(cols)
        if len(self.reported) == self.capacity:
            self.flush()

    def flush(self) -> None:
        """Read the window back; raise `NonFiniteLoss` naming the first bad loss, its step and its seed."""
        if not self.reported:
            return
        rows = self.rows[: len(self.reported)].double().cpu()  # (steps, losses, seeds)
        reported = torch.zeros(rows.shape[:2], dtype=torch.bool)
        for i, cols in enumerate(self.reported):
            reported[i, list(cols)] = True
        self.reported = []
        bad = reported.unsqueeze(-1) & ~torch.isfinite(rows)
        if bad.any():
            step_offset, column, seed = bad.nonzero()[0].tolist()
            raise NonFiniteLoss(self.names[column], self.first_step + step_offset, seed)
        totals = rows.where(reported.unsqueeze(-1), 0.0).sum(0)  # (losses, seeds)
        counts = reported.sum(0).tolist()
        for seed, (sums, seed_counts) in enumerate(zip(self.sums, self.counts)):
            for name, total, count in zip(self.names, totals[:, seed].tolist(), counts):
                if count:
                    sums[name] = sums.get(name, 0.0) + total
                    seed_counts[name] = seed_counts.get(name, 0) + count

    def take_means(self) -> list[dict[str, float]]:
        """Each seed's mean of every loss since the last call."""
        self.flush()
        means = [{name: total / counts[name] for name, total in sums.items()}
                 for sums, counts in zip(self.sums, self.counts)]
        self.sums, self.counts = [{} for _ in range(self.seeds)], [{} for _ in range(self.seeds)]
        return means


class NonFiniteLoss(Exception):
    def __init__(self, loss_name: str, step: int, seed_index: int = 0):
        super().__init__(loss_name, step, seed_index)
        self.loss_name, self.step, self.seed_index = loss_name, step, seed_index

    def message(self, phase: str, seeds: tuple[int, ...], saved_in: Path) -> str:
        """What went wrong where, where the state was saved (`saved_in`, of a lone seed) and what to do."""
        network = self.loss_name.split("/")[0]
        if len(seeds) == 1:
            seed, saved, others = "", saved_in, ""
        else:
            healthy = ",".join(str(s) for i, s in enumerate(seeds) if i != self.seed_index)
            seed, saved = f" of seed {seeds[self.seed_index]}", f"{saved_in.name} in each seed's folder"
            # the other seeds' numbers are their own (nothing crosses the seed axis): they can go on alone
            others = f"; the other seeds can go on from their checkpoints with --seeds {healthy} --resume"
        return (f"loss {self.loss_name} of network '{network}' became NaN/inf at {phase} step {self.step}{seed}; "
                f"state saved to {saved} (the last good checkpoint is untouched){others}. Try a lower learning rate "
                "or check the dataset's rewards")
