"""What a new user meets first: a quiet run, and data that do not fit the environment (or a given mixture) refused in
one line before any training step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from d4rl_server import write_tiny_d4rl_file

from lom import devices
from lom.errors import LOMError
from lom.networks import GaussianMixture
from lom.training.sizes import check_mixture_fit

REPO = Path(__file__).resolve().parents[1]
REFERENCES = {"ref_min_score": 0.0, "ref_max_score": 100.0}


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def train(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_halfcheetah_run_prints_no_settotalmass_notice(env, tmp_path):
    data = write_tiny_d4rl_file(tmp_path / "cheetah.hdf5", obs_dim=17, act_dim=6, metadata=REFERENCES)
    out = train(["--env_name", "HalfCheetah-v4", "--dataset_path", str(data), "--training_steps", "200",
                 "--gmm_steps", "100", "--eval_every", "200", "--eval_episodes", "2",
                 "--log_path", str(tmp_path / "runs")], env)
    assert out.returncode == 0, out.stderr
    assert "final normalised score" in out.stdout
    assert "settotalmass" not in out.stdout + out.stderr
    run_dir = Path(re.search(r"results in (.*)/results.json", out.stdout).group(1))
    assert json.loads((run_dir / "config.json").read_text())["cpu_threads"] == 1  # OMP_NUM_THREADS=1 is kept


@pytest.mark.parametrize("obs_dim, act_dim, sizes", [(11, 6, ("11-dimensional observations", "observes 17")),
                                                     (17, 3, ("3-dimensional actions", "takes 6"))])
def test_data_that_do_not_fit_the_env_are_refused_in_one_line_before_training(env, tmp_path, obs_dim, act_dim,
                                                                               sizes):
    data = write_tiny_d4rl_file(tmp_path / "other.hdf5", obs_dim=obs_dim, act_dim=act_dim, metadata=REFERENCES)
    started = time.monotonic()
    out = train(["--env_name", "HalfCheetah-v4", "--dataset_path", str(data), "--log_path", str(tmp_path / "runs")],
                env)
    assert time.monotonic() - started < 60
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert all(size in lines[0] for size in sizes) and "--env_name" in lines[0], lines[0]
    assert not (tmp_path / "runs").exists(), "a refused run must not create or move run folders"


def test_a_mixture_for_other_observations_is_refused_before_training(env, tmp_path):
    data = write_tiny_d4rl_file(tmp_path / "cheetah.hdf5", obs_dim=17, act_dim=6, metadata=REFERENCES)
    gmm = tmp_path / "gmm.pt"
    torch.save({"gmm": GaussianMixture(11, 6, 5).state_dict()}, gmm)
    out = train(["--env_name", "HalfCheetah-v4", "--dataset_path", str(data), "--gmm_path", str(gmm),
                 "--log_path", str(tmp_path / "runs")], env)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "11-dimensional observations" in lines[0] and "have 17" in lines[0], out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_mixture_with_other_components_actions_or_width_names_both_sizes():
    def refusal(obs_dim, act_dim, components, width=512) -> str:
        state = {"gmm": GaussianMixture(obs_dim, act_dim, components, (width, width)).state_dict()}
        with pytest.raises(LOMError) as refused:
            check_mixture_fit(state, "gmm.pt", obs_dim=17, act_dim=6, components=5, width=512)
        return str(refused.value)

    assert "has 3 components, but --num_components is 5: pass --num_components 3" in refusal(17, 6, 3)
    assert "6-dimensional actions" in refusal(17, 4, 5)
    assert "64 wide, but --gmm_hidden_width is 512: pass --gmm_hidden_width 64" in refusal(17, 6, 5, width=64)
    check_mixture_fit({"gmm": GaussianMixture(17, 6, 5).state_dict()}, "gmm.pt", 17, 6, 5, 512)


def test_torch_trains_on_one_thread_unless_omp_num_threads_asks_for_more(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert devices.set_torch_threads() == 1 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(3)  # what PyTorch does with the variable when it loads
        assert devices.set_torch_threads() == 3
    finally:
        torch.set_num_threads(before)
