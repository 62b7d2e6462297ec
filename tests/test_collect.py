"""`python -m lom.collect`: a tiny SAC run in real MuJoCo writes six loadable datasets and resumes after a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lom.collect import collection as collect
from lom.collect.sac import SAC_CHECKPOINT, EvalRow, load_checkpoint
from lom.data import load_transitions, resolve_dataset
from lom.errors import EXIT_USAGE

ENV_ID = "HalfCheetah-v4"
EPISODE_STEPS = 50
STEPS = 400
TRANSITIONS = 320  # not a multiple of the episode length: the last episode is cut
# Small networks and short episodes keep a whole collection to a few seconds; the code path is the real one.
FLAGS = [
    "--env", ENV_ID, "--steps", str(STEPS), "--transitions", str(TRANSITIONS), "--learning_starts", "100",
    "--eval_every", "100", "--eval_episodes", "2", "--reference_episodes", "2",
    "--max_episode_steps", str(EPISODE_STEPS), "--checkpoint_every", "100", "--hidden", "32", "--batch_size", "32",
    "--no_progress",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collect")
    assert collect.main([*FLAGS, "--out", str(out)]) == 0
    return out


def _file(out: Path, kind: str) -> Path:
    return out / f"halfcheetah-v4_{kind}.hdf5"


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f if isinstance(f[key], h5py.Dataset)}


def test_writes_six_datasets_that_the_loader_accepts(finished_run):
    references = json.loads((finished_run / collect.REFERENCES_NAME).read_text())
    medium_step = int(h5py.File(_file(finished_run, "medium"), "r")["metadata/policy_step"][()])
    expected_rows = {"full-replay": STEPS, "medium-replay": medium_step, "medium": TRANSITIONS, "expert": TRANSITIONS,
                     "medium-expert": 2 * TRANSITIONS, "random": TRANSITIONS}
    assert set(expected_rows) == set(collect.KINDS)
    for kind, rows in expected_rows.items():
        path = _file(finished_run, kind)
        spec = resolve_dataset(ENV_ID, dataset_path=str(path))
        assert (spec.env_id, spec.ref_min_score, spec.ref_max_score) == (
            ENV_ID, references["random_return"], references["expert_return"])  # fmt: skip
        assert (spec.env_family, spec.kind) == ("halfcheetah", kind)  # what the paper preset reads (its row)
        transitions = load_transitions(spec, progress=False)
        assert transitions.obs_dim == 17 and transitions.act_dim == 6
        arrays = _arrays(path)
        assert len(arrays["rewards"]) == rows
        # HalfCheetah never terminates: every 50th row of a rollout is a time-limit cut, and so is its last row.
        assert not arrays["terminals"].any()
        cuts = np.flatnonzero(arrays["timeouts"])
        rollout_ends = [TRANSITIONS, rows] if kind == "medium-expert" else [rows]
        for start, end in zip([0, *rollout_ends], rollout_ends):
            assert set(cuts) >= set(range(start + EPISODE_STEPS - 1, end, EPISODE_STEPS)) | {end - 1}
        # Inside an episode, next_observations[i] is the row i + 1 observation the env returned.
        inside = np.setdiff1d(np.arange(rows - 1), cuts)
        np.testing.assert_array_equal(arrays["next_observations"][inside], arrays["observations"][inside + 1])
        with h5py.File(path, "r") as f:
            meta = f["metadata"]
            assert meta["kind"][()].decode() == kind and meta["env_id"][()].decode() == ENV_ID
            assert int(meta["num_episodes"][()]) == len(meta["episode_returns"][()])
            assert {"seed", "gymnasium_version", "mujoco_version", "policy_step"} <= set(meta)
    assert 0 < medium_step <= STEPS
    assert references["expert_return"] != references["random_return"]
    for name in (collect.RETURNS_PNG_NAME, "sac_eval.png", "sac_eval.csv"):
        assert (finished_run / name).stat().st_size > 0
    assert not list(finished_run.glob("*.tmp")) and not list(finished_run.glob(".*"))


def test_medium_expert_is_the_medium_rows_then_the_expert_rows_and_random_acts_uniformly(finished_run):
    medium, expert = _arrays(_file(finished_run, "medium")), _arrays(_file(finished_run, "expert"))
    both = _arrays(_file(finished_run, "medium-expert"))
    for key in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
        np.testing.assert_array_equal(both[key], np.concatenate([medium[key], expert[key]]))
    with h5py.File(_file(finished_run, "medium-expert"), "r") as f:
        returns = f["metadata/episode_returns"][()]
    assert len(returns) == 2 * (TRANSITIONS // EPISODE_STEPS)
    actions = _arrays(_file(finished_run, "random"))["actions"]
    assert np.abs(actions.mean()) < 0.05 and actions.min() < -0.99 and actions.max() > 0.99
    assert 0.55 < actions.std() < 0.6  # uniform on [-1, 1]: std 1/sqrt(3) = 0.577


def test_replay_files_are_the_training_buffer(finished_run):
    full = _arrays(_file(finished_run, "full-replay"))
    medium_replay = _arrays(_file(finished_run, "medium-replay"))
    n = len(medium_replay["rewards"])
    for key in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(medium_replay[key], full[key][:n])
    # Before learning starts SAC acts uniformly at random, so early actions cover [-1, 1].
    assert full["actions"][:100].min() < -0.9 and full["actions"][:100].max() > 0.9


def test_collected_file_trains_through_the_sweep_and_the_report(finished_run, tmp_path):
    """run_baselines.sh and lom.report work on a collected file unchanged (--env_name is the env id)."""
    log_path = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "DRY_RUN", "TRAIN_SCRIPT")}
    env.update(PYTHON=sys.executable, LOG_PATH=str(log_path), DEVICE="cpu", JOBS="2", DATASETS=ENV_ID, SEEDS="0",
               AGENTS="LOM BC", STEPS="4", GMM_STEPS="4", EVAL_EVERY="2", EVAL_EPISODES="1")  # fmt: skip
    command = ["bash", str(REPO / "run_baselines.sh"), "--dataset_path", str(_file(finished_run, "full-replay"))]
    sweep = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert "summary: 2 done, 0 skipped (already finished), 0 failed, of 2" in sweep.stdout
    report = subprocess.run([sys.executable, "-m", "lom.report", str(log_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = [line for line in report.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| dataset | LOM | BC |"
    assert rows[-1].startswith("| halfcheetah-v4_full-replay |") and rows[-1].count("(n=1)") == 2
    # Scores are normalised with the file's own references, not left as raw returns.
    run_dir = log_path / "LOM" / "default" / "halfcheetah-v4_full-replay" / "LOM" / "seed0"
    config = json.loads((run_dir / "config.json").read_text())
    references = json.loads((finished_run / collect.REFERENCES_NAME).read_text())
    assert (config["env_id"], config["ref_min_score"], config["ref_max_score"]) == (
        ENV_ID, references["random_return"], references["expert_return"])  # fmt: skip


def test_second_run_only_reports(finished_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()}
    assert collect.main([*FLAGS, "--out", str(finished_run)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()} == before
    assert capsys.readouterr().out.count("(existing)") == 6


def test_medium_expert_and_random_are_written_from_an_existing_collection_without_sac(finished_run, tmp_path):
    """A collection made before these kinds existed gains them from its files: no SAC checkpoint is read or made."""
    out = tmp_path / "older"
    shutil.copytree(finished_run, out)
    for path in (_file(out, "medium-expert"), _file(out, "random"), out / SAC_CHECKPOINT):
        path.unlink()
    eval_csv = (out / "sac_eval.csv").read_text()
    assert collect.main([*FLAGS, "--out", str(out)]) == 0
    assert not (out / SAC_CHECKPOINT).exists() and (out / "sac_eval.csv").read_text() == eval_csv
    for kind in collect.DERIVED_KINDS:
        remade, original = _arrays(_file(out, kind)), _arrays(_file(finished_run, kind))
        for key in ("observations", "actions", "rewards", "timeouts"):
            np.testing.assert_array_equal(remade[key], original[key])
        spec = resolve_dataset(ENV_ID, dataset_path=str(_file(out, kind)))
        assert len(load_transitions(spec, progress=False)) > 0


def test_killed_collection_resumes_where_it_stopped(finished_run, tmp_path):
    out, log = tmp_path / "killed", tmp_path / "collect.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as printed:
        proc = subprocess.Popen([sys.executable, "-m", "lom.collect", *FLAGS, "--out", str(out)], env=env, cwd=REPO,
                                stdout=printed, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 120
        while not (out / SAC_CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert "settotalmass" not in log.read_text(), "MuJoCo's known deprecation notice reached the output"
    checkpoint = load_checkpoint(out)
    assert checkpoint is not None and 0 < checkpoint["step"] < STEPS, "the kill should land mid-training"
    assert not list(out.glob("*.hdf5"))

    config = collect.config_from_args(collect.build_parser().parse_args([*FLAGS, "--out", str(out)]))
    result = collect.collect(config)
    assert result.resumed_from_step == checkpoint["step"]
    assert [row.step for row in result.evals] == list(range(100, STEPS + 1, 100))
    # Checkpoints hold every RNG, so the resumed run reproduces the uninterrupted one exactly.
    for kind in collect.KINDS:
        resumed, uninterrupted = _arrays(_file(out, kind)), _arrays(_file(finished_run, kind))
        for key in ("observations", "actions", "rewards", "timeouts"):
            np.testing.assert_array_equal(resumed[key], uninterrupted[key])


def test_changed_flags_are_refused_in_one_line(finished_run, capsys):
    changed = [*FLAGS, "--out", str(finished_run), "--seed", "1"]
    assert collect.main(changed) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "seed: 0 there, 1 now" in err and "Traceback" not in err


def test_discrete_env_is_refused(tmp_path, capsys):
    assert collect.main(["--env", "CartPole-v1", "--out", str(tmp_path), "--steps", "10"]) == EXIT_USAGE
    assert "Box" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "a refused run must not leave files that block the corrected command"


def test_medium_is_first_snapshot_a_third_of_the_way_from_random_to_final():
    evals = [EvalRow(step, ret, 0.0, 0.0) for step, ret in ((10, -50.0), (20, 250.0), (30, 400.0), (40, 1000.0))]
    # Threshold: -200 + (1000 + 200) / 3 = 200.
    assert collect.select_medium(evals, random_return=-200.0, fraction=1 / 3, learning_starts=0) == 1
    assert collect.select_medium(evals, random_return=-200.0, fraction=1.0, learning_starts=0) == 3


def test_medium_is_never_the_untrained_actor_standing_still():
    # Ant-v4's collection: the untrained actor's near-zero action stands still for ~1,000 (survival bonus), above
    # the threshold -56 + (1,204 + 56) / 3 = 364; the first trained policy past it is the one at step 30,000.
    curve = ((10_000, 999.0), (20_000, 356.0), (30_000, 637.0), (40_000, 360.0), (300_000, 1204.0))
    evals = [EvalRow(step, ret, 0.0, 0.0) for step, ret in curve]
    assert collect.select_medium(evals, random_return=-56.0, fraction=1 / 3, learning_starts=10_000) == 2


def test_actor_log_prob_matches_torch_distributions():
    from lom.collect.sac import TanhGaussianActor

    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, 16)
    obs = torch.randn(5, 3)
    generator = torch.Generator().manual_seed(1)
    action, log_prob = actor.sample(obs, generator)
    mean, log_std = actor(obs)
    base = torch.distributions.Normal(mean, log_std.exp())
    expected = torch.distributions.TransformedDistribution(base, torch.distributions.TanhTransform())
    torch.testing.assert_close(log_prob, expected.log_prob(action).sum(-1), rtol=1e-4, atol=1e-3)


def test_replay_rows_for_a_file_do_not_write_into_the_buffer():
    from lom.collect.sac import ReplayBuffer, mark_cut_episode

    buffer = ReplayBuffer(4, obs_dim=2, act_dim=1, device=torch.device("cpu"))
    for step in range(3):
        buffer.add(np.zeros(2), np.zeros(1), 1.0, np.ones(2), terminated=False, truncated=False)
    rows = buffer.numpy_rows(2)
    mark_cut_episode(rows)  # what writing medium-replay does to its copy
    assert rows["timeouts"][-1] and not buffer.timeouts[:3].any()
