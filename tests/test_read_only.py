"""Every entry point meets a read-only folder with one line on stderr, the usage exit status and no traceback, and
leaves the folder's files as they were; the ones that only read it work as usual.

The folder is made read-only the way a user meets it: as root (these tests run as root in CI), a read-only bind
mount in a private mount namespace (`unshare -m`), so writes fail with EROFS as on a read-only file system; root
ignores permission bits. Other users get a folder without write permission (EACCES).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lom.config import TrainConfig
from lom.errors import EXIT_OK, EXIT_USAGE
from lom.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
TINY = dict(training_steps=20, gmm_steps=10, eval_every=20, eval_episodes=2, log_every=10, gmm_batch_size=64,
            critic_batch_size=64, mode_batch_size=64, actor_batch_size=64, device="cpu")
# Runs the commands given as JSON (name -> argv) at once and writes {name: [status, stdout, stderr]} as JSON.
DRIVER = """
import json, subprocess, sys
commands = json.loads(sys.argv[1])
procs = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
         for name, argv in commands.items()}
results = {name: [p.wait(timeout=300), *p.communicate()] for name, p in procs.items()}
open(sys.argv[2], "w").write(json.dumps(results))
"""
# Mounts the folder read-only over itself in this new mount namespace, then runs the driver; the host never sees it.
MOUNT_READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'


def run_in_read_only(folder: Path, commands: dict[str, list[str]], env: dict[str, str], out: Path) -> dict[str, list]:
    """Run the commands at once while `folder` is read-only; {name: [exit status, stdout, stderr]}."""
    driver = [sys.executable, "-c", DRIVER, json.dumps(commands), str(out)]
    if os.geteuid() == 0:
        done = subprocess.run(["unshare", "-m", "sh", "-c", MOUNT_READ_ONLY, "sh", str(folder), *driver], env=env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"cannot make {folder} read-only with a bind mount in a new mount namespace (root needs "
                        f"CAP_SYS_ADMIN for it): {done.stderr.strip()}", pytrace=False)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            subprocess.run(driver, check=True, env=env, timeout=600)
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
    return json.loads(out.read_text())


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None for a folder), by its path under `folder`."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A read-only-to-be folder holding one finished tiny LOM run, and a writable dataset cache beside it."""
    root = tmp_path_factory.mktemp("read_only")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOM_CACHE_DIR", str(root / "cache"))
        run_dir = Path(train(TrainConfig(log_path=str(root / "ro" / "runs"), **TINY))["run_dir"])
    return root, run_dir


def test_every_entry_point_says_in_one_line_that_a_read_only_folder_cannot_be_written(finished, tmp_path):
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) not found: apt-get install util-linux")
    root, run_dir = finished
    folder, runs = root / "ro", root / "ro" / "runs"
    python = [sys.executable]
    train_py = [*python, str(REPO / "train.py"), "--log_path", str(runs), *(f"--{k}={v}" for k, v in TINY.items())]
    commands = {
        "train.py": train_py,
        "train.py --resume": [*train_py, "--resume"],
        "lom.report": [*python, "-m", "lom.report", str(runs)],
        "lom.report --modes": [*python, "-m", "lom.report", "--modes", str(run_dir)],
        "lom.export": [*python, "-m", "lom.export", str(run_dir), "--format", "onnx"],
        "lom.collect": [*python, "-m", "lom.collect", "--env", "Pendulum-v1", "--out", str(folder / "collected")],
        "run_baselines.sh": ["bash", str(REPO / "run_baselines.sh")],
        # These only read the folder: they work as usual.
        "lom.evaluate": [*python, "-m", "lom.evaluate", str(run_dir), "--episodes", "2"],
        "lom.report --status": [*python, "-m", "lom.report", str(runs), "--status"],
    }
    before = snapshot(folder)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(root / "cache"), "PYTHONPATH": str(REPO),
                   "LOG_PATH": str(runs), "DATASETS": "multimodal-fork-v0", "SEEDS": "0", "AGENTS": "BC"}
    results = run_in_read_only(folder, commands, environment, tmp_path / "results.json")
    assert snapshot(folder) == before, "a command changed the read-only folder"
    for name, (status, stdout, stderr) in results.items():
        if name in ("lom.evaluate", "lom.report --status"):
            assert status == EXIT_OK and "Traceback" not in stderr, f"{name}: {stderr}"
            continue
        lines = stderr.strip().splitlines()
        assert status == EXIT_USAGE and len(lines) == 1, f"{name} (exit {status}):\n{stderr}"
        assert lines[0].startswith("error: cannot ") and str(folder) in lines[0], f"{name}: {lines[0]}"
        assert "read-only" in lines[0] or "permission denied" in lines[0], f"{name}: {lines[0]}"
