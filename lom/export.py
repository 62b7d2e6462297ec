"""Write a run's deterministic policy as one file that needs neither this package nor its training code:
`python -m lom.export RUN_DIR --format torchscript|onnx [--out FILE]`.

The file maps raw environment observations, float32 of shape (batch, observation size), to the actions the
environment receives, (batch, action size): the state standardisation, the policy network and the map from the
policy's [-1, 1] onto the env's action bounds are all inside it (for envs acting in [-1, 1], such as the MuJoCo tasks
and the fork, the last step is left out). Load it with `torch.jit.load(FILE)` or
`onnxruntime.InferenceSession(FILE)` (input "observation", output "action").
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lom.cli import OneLineParser, run_cli
from lom.envs import action_bounds
from lom.errors import LOMError, writing
from lom.evaluate import LoadedRun, load_run
from lom.io import atomic_path

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
# The written file is read back and compared with the PyTorch policy on this many states around the dataset's.
CHECK_STATES = 1000
CHECK_TOLERANCE = 1e-5


class ExportedPolicy(nn.Module):
    """Raw observation -> standardised -> policy network -> action in the env's own units."""

    def __init__(self, normalizer: nn.Module, policy: nn.Module, low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.normalizer, self.policy = normalizer, policy
        unit = bool(np.allclose(low, -1.0) and np.allclose(high, 1.0))
        self.rescale = not unit
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("half_range", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        # The policy ends in tanh, but a runtime's tanh may round past ±1 (ONNX Runtime's gave 1.0000001): clamp, so
        # that no action leaves the box a controller may check. PyTorch's own actions are unchanged by it.
        action = self.policy(self.normalizer(observation)).clamp(-1.0, 1.0)
        if self.rescale:  # the same linear map as the RescaleAction wrapper that evaluation steps the env through
            action = torch.minimum(self.low + (action + 1.0) * self.half_range, self.high)
        return action


def exported_policy(run: LoadedRun) -> ExportedPolicy:
    """A copy of the run's policy for inference: on the CPU, and without gradients, so that a loaded file's output
    converts straight to numpy."""
    low, high = action_bounds(run.spec)
    policy = ExportedPolicy(run.normalizer, run.agent.policy_network(), low, high)
    return copy.deepcopy(policy).cpu().eval().requires_grad_(False)


@dataclass
class Exported:
    path: Path
    max_difference: float  # between the file, read back, and the PyTorch policy on CHECK_STATES states
    summary: str


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> Exported:
    """Write the run's policy in `fmt` (default file: RUN_DIR/policy.pt or .onnx), read it back and check it."""
    if fmt not in FORMATS:
        raise LOMError(f"--format {fmt!r} is unknown: choose one of {', '.join(FORMATS)}")
    run = load_run(run_dir)
    phase, step = run.progress["phase"], run.progress["step"]
    if phase != "train" or step == 0:
        where = f"pre-training step {step}" if phase != "train" else "before the first training step"
        raise LOMError(f"the run in {run.run_dir} has no trained policy yet (its checkpoint is from {where}): "
                       "finish it first with train.py's --resume")
    policy = exported_policy(run)
    states = check_states(run)
    path = Path(out) if out else run.run_dir / f"policy{FORMATS[fmt]}"
    with writing(str(path), "pass --out with a file in a folder you can write to"), atomic_path(path) as tmp:
        (write_torchscript if fmt == "torchscript" else write_onnx)(policy, states[:2], tmp)
    with torch.no_grad():
        expected = policy(states).numpy()
    difference = float(np.abs(read_back(path, fmt)(states.numpy()) - expected).max())
    if difference > CHECK_TOLERANCE:
        raise LOMError(f"{path} computes actions up to {difference:.2g} away from the PyTorch policy's (tolerance "
                       f"{CHECK_TOLERANCE:g}); please report this with your torch and onnx versions")
    summary = (f"observation float32 (batch, {states.shape[1]}) -> action (batch, {expected.shape[1]}) for "
               f"{run.spec.env_id}")
    return Exported(path, difference, summary)


def check_states(run: LoadedRun) -> torch.Tensor:
    """States spread like the dataset's (its mean and std per dimension), drawn with a fixed seed."""
    generator = torch.Generator().manual_seed(0)
    mean, std = run.normalizer.mean.cpu(), run.normalizer.std.cpu()
    return mean + std * torch.randn(CHECK_STATES, len(mean), generator=generator)


def write_torchscript(policy: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), exporter_notices_hidden():
        torch.jit.save(torch.jit.trace(policy, example), str(path))


def write_onnx(policy: nn.Module, example: torch.Tensor, path: Path) -> None:
    with exporter_notices_hidden():
        torch.onnx.export(policy, (example,), str(path), input_names=["observation"], output_names=["action"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False)


@contextlib.contextmanager
def exporter_notices_hidden():
    """The exporters log and warn about their own internals (operators of packages not installed, APIs they
    deprecate, such as TorchScript itself, the format the user asked for); none of it concerns the policy. Their
    errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def read_back(path: Path, fmt: str):
    """The written file as a function of a float32 numpy batch, loaded the way a user loads it."""
    if fmt == "torchscript":
        with exporter_notices_hidden():  # torch.jit.load's deprecation notice: the user asked for TorchScript
            module = torch.jit.load(str(path))
        return lambda states: module(torch.as_tensor(states, dtype=torch.float32)).detach().numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda states: session.run(None, {"observation": np.asarray(states, dtype=np.float32)})[0]


def main() -> None:
    parser = OneLineParser(prog="python -m lom.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder (holds config.json and checkpoint.pt)")
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="file format")
    parser.add_argument("--out", help="file to write (default: RUN_DIR/policy.pt or RUN_DIR/policy.onnx)")
    args = parser.parse_args()
    exported = export(args.run_dir, args.format, args.out)
    print(f"wrote {exported.path}: {exported.summary}; read back, its actions differ from the PyTorch policy's by "
          f"at most {exported.max_difference:.1g} on {CHECK_STATES:,} states")


if __name__ == "__main__":
    run_cli(main)
