"""Two inputs users get wrong say what is wrong, in one line and without a traceback: a folder given as
--dataset_path, and a --gmm_path file that is not a mixture train.py saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from d4rl_server import write_tiny_d4rl_file

from lom.data import resolve_dataset
from lom.data.d4rl_file import read_d4rl_arrays
from lom.errors import LOMError
from lom.training.sizes import load_mixture

REPO = Path(__file__).resolve().parents[1]


def one_line_error(args: list[str], tmp_path: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "train.py", *args, "--log_path", str(tmp_path / "runs")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert not (tmp_path / "runs").exists(), "a refused run must create no run folder"
    return lines[0]


def test_a_folder_as_dataset_path_is_named_a_folder(tmp_path):
    folder = tmp_path / "collected"
    write_tiny_d4rl_file(folder / "hopper-v4_medium.hdf5", obs_dim=11, act_dim=3)
    line = one_line_error(["--env_name", "Hopper-v4", "--dataset_path", str(folder)], tmp_path)
    assert f"{folder} is a folder, not an HDF5 file" in line and "hopper-v4_medium.hdf5" in line, line
    assert "does not exist" not in line
    with pytest.raises(LOMError, match="is a folder, not an HDF5 file"):
        resolve_dataset("hopper-medium-v2", dataset_path=str(folder))
    with pytest.raises(LOMError, match="is a folder, not an HDF5 file"):
        read_d4rl_arrays(folder)


def test_an_unreadable_gmm_path_is_named_the_mixture_file(tmp_path):
    bad = tmp_path / "gmm.pt"
    bad.write_text("not a mixture\n")
    line = one_line_error(["--gmm_path", str(bad), "--training_steps", "10", "--eval_every", "10"], tmp_path)
    assert f"--gmm_path: cannot read the mixture file {bad}" in line and line.endswith("(a run's gmm.pt)"), line
    assert "checkpoint" not in line and "delete it" not in line
    with pytest.raises(LOMError, match="--gmm_path: the mixture file .* does not exist"):
        load_mixture(str(tmp_path / "absent.pt"))
