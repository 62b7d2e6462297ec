"""A flag that cannot work is refused in one line before anything is written: a finished run in the folder it maps
to stays exactly as it was (no `.old-…` folder, no lock, not a byte changed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_train import TINY, env, run_dir_of, train  # noqa: F401  (env is a fixture)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(root / "cache")}
    args = [*TINY, "--agent", "BC", "--log_path", str(root / "runs")]
    done = train(args, environment)
    assert done.returncode == 0, done.stderr
    assert (run_dir_of(args, environment) / "results.json").is_file()
    return root, args, environment


@pytest.mark.parametrize("flags, message", [
    (["--device", "gpu"], "error: --device 'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
    (["--device", "cuda"], "error: --device cuda asked for, but PyTorch sees no CUDA GPU; use --device cpu"),
    (["--device", "cuda:1"], "error: --device cuda:1 asked for, but PyTorch sees no CUDA GPU; use --device cpu"),
    (["--cuda_graphs", "1"], "error: --cuda_graphs 1 needs a CUDA device, but this run trains on cpu: use "
                             "--cuda_graphs auto or 0, or --device cuda"),
    (["--bc_lr", "-1"], "error: --bc_lr must be at least 0, got -1.0"),
    (["--iql_beta", "5"], "error: --iql_beta is IQL's hyper-parameter, but this run trains BC: add --agent IQL or "
                          "drop the flag"),
], ids=["gpu", "cuda", "cuda1", "cuda_graphs", "bad_agent_value", "other_agents_flag"])
def test_a_bad_device_flag_leaves_a_finished_run_untouched(flags, message, finished):
    root, args, environment = finished
    before = snapshot(root / "runs")
    out = train([*args, *flags], environment)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [message], out.stderr
    assert snapshot(root / "runs") == before
