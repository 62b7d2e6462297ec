"""`python -m lom.report --modes RUN_DIR` on runs trained by the real train.py: the fork figure, the histogram
figure for other datasets, and one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from d4rl_server import write_tiny_d4rl_file
from PIL import Image

from lom.data import load_transitions
from lom.envs import make_env
from lom.errors import EXIT_USAGE
from lom.evaluate import load_run
from lom.fork.dataset import fork_dataset_path
from lom.report.cli import main
from lom.report.modes import policy_rollout, sample_states, selection_figure

REPO = Path(__file__).resolve().parents[1]
# The tiny HalfCheetah file has no reference scores; the warning saying so is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*has no metadata/ref_min_score")
TINY = ["--training_steps", "20", "--gmm_steps", "20", "--eval_every", "20", "--eval_episodes", "1", "--device", "cpu",
        "--gmm_batch_size", "64", "--critic_batch_size", "64", "--mode_batch_size", "64", "--actor_batch_size", "64"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run folders of tiny trainings: LOM and BC on the fork, LOM on a HalfCheetah-v4 file (trained side by side)."""
    root = tmp_path_factory.mktemp("modes")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(root / "cache")}
    cheetah_file = write_tiny_d4rl_file(root / "cheetah.hdf5", obs_dim=17, act_dim=6)
    flags = {
        "fork": [],
        "bc": ["--agent", "BC"],
        "cheetah": ["--env_name", "HalfCheetah-v4", "--dataset_path", str(cheetah_file)],
    }
    with pytest.MonkeyPatch.context() as patch:  # generate the fork dataset once, not in two trainings at a time
        patch.setenv("LOM_CACHE_DIR", env["LOM_CACHE_DIR"])
        fork_dataset_path()
    procs = {name: subprocess.Popen([sys.executable, "train.py", *TINY, *extra, "--log_path", str(root / name)],
                                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, extra in flags.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
    return {name: next((root / name).rglob("config.json")).parent for name in flags}


def assert_png(path: Path, min_width: int) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # something was drawn, not a blank canvas


def test_fork_run_gets_the_state_space_figure(runs):
    run_dir = runs["fork"]
    out = subprocess.run([sys.executable, "-m", "lom.report", "--modes", str(run_dir)], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"wrote {run_dir / 'modes.png'}"
    assert_png(run_dir / "modes.png", min_width=1200)
    assert not list(run_dir.glob(".modes.png.*"))  # the atomic write left no temporary file


def test_drawn_rollout_is_what_the_env_does(runs):
    """The path in the figure is the deterministic policy's real episode, not an approximation of it."""
    run = load_run(runs["fork"])
    env = make_env(run.spec)
    obs, _ = env.reset(seed=3)
    path, reward, ended = policy_rollout(run, obs.astype(np.float64))
    visited, total = [obs], 0.0
    for _ in range(len(path) - 1):
        with torch.no_grad():
            action = run.agent.act_single(run.normalizer(torch.as_tensor(obs[None])))[0].numpy()
        obs, r, terminated, truncated, _ = env.step(action)
        visited.append(obs)
        total += r
    np.testing.assert_allclose(path, np.array(visited), atol=1e-4)
    assert reward == pytest.approx(total)
    assert ended == terminated
    assert ended or truncated


def test_locomotion_run_gets_component_histograms(runs, capsys):
    run_dir = runs["cheetah"]
    assert main(["--modes", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run_dir / 'modes.png'}"
    assert_png(run_dir / "modes.png", min_width=800)


def test_histograms_count_the_selected_and_the_heaviest_component(runs):
    run = load_run(runs["cheetah"])
    states = load_transitions(run.spec, progress=False).observations
    obs = run.normalizer(torch.as_tensor(states))
    with torch.no_grad():
        log_weights = run.agent.gmm(obs)[2]
        selected = run.agent.best_component(obs, log_weights).numpy()
    n = run.config.num_components
    selected_bars, heaviest_bars = (np.array([bar.get_height() for bar in ax.patches])
                                    for ax in selection_figure(run, states).axes)
    np.testing.assert_allclose(selected_bars, np.bincount(selected, minlength=n) / len(states), rtol=1e-6)
    np.testing.assert_allclose(heaviest_bars, np.bincount(log_weights.argmax(-1).numpy(), minlength=n) / len(states),
                               rtol=1e-6)


def test_non_lom_run_is_refused_in_one_line(runs, capsys):
    assert main(["--modes", str(runs["bc"])]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--modes needs a LOM run" in err[0] and "BC" in err[0]
    assert not (runs["bc"] / "modes.png").exists()


def test_missing_run_folder_is_one_line(tmp_path, capsys):
    assert main(["--modes", str(tmp_path / "nope")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run folder" in err[0]


def test_modes_does_not_mix_with_a_report(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--modes", str(tmp_path), str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--modes RUN_DIR takes no LOG_PATH" in capsys.readouterr().err


def test_sample_states_caps_without_repeats():
    states = np.arange(50, dtype=np.float32).reshape(25, 2)
    assert sample_states(states, 100) is states
    sample = sample_states(states, 10)
    assert sample.shape == (10, 2) and len(np.unique(sample[:, 0])) == 10
    assert np.isin(sample[:, 0], states[:, 0]).all()
