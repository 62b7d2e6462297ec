"""Captured training steps: an agent's update recorded once as CUDA graphs, then replayed step after step.

An eager step of these small networks launches hundreds of tiny kernels, each queued by the CPU; a replayed graph
queues them all in one call. What capture needs, and where it comes from:
- no host work inside a step: batches are index draws on the device (`DeviceDataset.draw`), losses stay tensors,
  IQL's learning-rate schedule is a tensor advanced on the device (`networks.CosineDecay`);
- optimisers that keep their step count on the device (`capturable=True`, `make_agent(..., capturable=True)`);
- random draws from each seed's generator on the device, registered with every graph, so that PyTorch advances
  them on every replay and each replay draws anew;
- Python counters (`CountsUpdates`: TD3+BC's policy delay, the sarsa critic's target period) pick different work on
  different steps: one graph is captured per phase of their period, and the counters are advanced here, by hand.

The first calls run eagerly (they are real training steps), at least `WARMUP_STEPS` and one more than the counters'
period, so that every optimiser has stepped once: they create what PyTorch makes lazily (Adam's moments, cuBLAS
workspaces) before capture fixes every tensor's address. Warm-up and capture share one side stream (per-stream
workspaces are then made before capture too). Capture runs no kernels, so it changes no parameter; checkpoints and
`--resume` see the same modules and optimisers as eager steps do.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
from torch import nn

from lom.agents.base import CountsUpdates, Losses
from lom.errors import LOMError

WARMUP_STEPS = 3


def can_capture(device: torch.device) -> bool:
    """Whether steps on `device` can be captured as CUDA graphs (and so train with capturable optimisers)."""
    return device.type == "cuda"


def use_cuda_graphs(setting: str, device: torch.device) -> bool:
    """--cuda_graphs: auto tries to capture on CUDA devices only; 1 on another device is refused in one line."""
    if setting == "1" and not can_capture(device):
        raise LOMError(f"--cuda_graphs 1 needs a CUDA device, but this run trains on {device}: use --cuda_graphs auto "
                       "or 0, or --device cuda")
    return setting == "1" or (setting == "auto" and can_capture(device))


class CapturedStep:
    """Calls `step()` (one update of `agent`, returning its losses) as eager warm-up steps, then as graph replays.

    If capture fails, `strict` (--cuda_graphs 1) raises LOMError naming --cuda_graphs 0; otherwise (auto) one
    warning names the cause and every later call is an eager step. `on_settled(captured)` is called once, when
    capture has succeeded or failed. The losses returned by a replay live in the graph's static memory and are
    overwritten by the next replay: read or copy them before calling again (`LossWindow.add` copies them).
    """

    def __init__(self, step: Callable[[], Losses], agent: nn.Module, strict: bool = False,
                 on_settled: Callable[[bool], None] = lambda captured: None, warmup: int = WARMUP_STEPS):
        self.step, self.agent, self.strict, self.on_settled = step, agent, strict, on_settled
        periods = [m.period for m in agent.modules() if isinstance(m, CountsUpdates)]
        self.warmup_left = max(warmup, math.lcm(1, *periods) + 1)
        self.stream: torch.cuda.Stream | None = None
        self.counters: list[CountsUpdates] = []
        self.graphs: list[torch.cuda.CUDAGraph] = []
        self.outputs: list[Losses] = []
        self.replays = 0
        self.eager = False  # capture failed: every step runs eagerly

    def __call__(self) -> Losses:
        if self.eager:
            return self.step()
        if self.warmup_left:
            return self._warmup_step()
        if not self.graphs and not self._capture_or_fall_back():
            return self.step()
        phase = self.replays % len(self.graphs)
        self.graphs[phase].replay()
        self.replays += 1
        for counter in self.counters:
            counter.updates += 1
        return self.outputs[phase]

    def _warmup_step(self) -> Losses:
        counters = [m for m in self.agent.modules() if isinstance(m, CountsUpdates)]
        before = [m.updates for m in counters]
        self.stream = self.stream or torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream), warnings.catch_warnings():
            # Capturable optimisers warn when they step outside a capture: these steps are meant to.
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            losses = self.step()
        torch.cuda.current_stream().wait_stream(self.stream)
        # The counters this step advances (not, say, the critic's during LOM's mixture pre-training).
        self.counters = [m for m, n in zip(counters, before) if m.updates != n]
        self.warmup_left -= 1
        return losses

    def _capture_or_fall_back(self) -> bool:
        """Capture the graphs; on failure raise (strict) or warn and turn eager. Whether they were captured."""
        try:
            self._capture()
        except Exception as exc:  # whatever CUDA or PyTorch refused: the step itself still runs eagerly
            cause = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.graphs, self.outputs = [], []
            if self.strict:
                raise LOMError(f"capturing the training step as CUDA graphs failed ({cause}); train with eager steps "
                               "with --cuda_graphs 0") from exc
            warnings.warn(f"capturing the training step as CUDA graphs failed ({cause}); the run continues with eager "
                          "steps (--cuda_graphs 0 skips the attempt)", stacklevel=2)
            self.eager = True
        self.on_settled(not self.eager)
        return not self.eager

    def _capture(self) -> None:
        period = math.lcm(1, *(m.period for m in self.counters))
        start = [m.updates for m in self.counters]
        torch.cuda.synchronize()
        try:
            for _ in range(period):  # graph j is the step taken with every counter at start + j
                graph = torch.cuda.CUDAGraph()
                # Each seed draws from its own generator (lom/seeds.py); registered, a replay advances each of them.
                for generator in self.agent.rng.generators or ():
                    graph.register_generator_state(generator)
                with torch.cuda.graph(graph, stream=self.stream):
                    self.outputs.append(self.step())
                self.graphs.append(graph)
        finally:
            for counter, updates in zip(self.counters, start):  # capture ran each step's Python, but no kernel
                counter.updates = updates
