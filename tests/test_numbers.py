"""The numbers a run reports: normalised scores by the dataset file's references, re-evaluation with the training
evaluation's seed, and vectorised evaluation against one episode at a time."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import h5py
import pytest
import torch
from d4rl_server import write_tiny_d4rl_file
from plain_paths import evaluate_one_by_one
from test_train import REPO, run_dir_of, train

from lom.data import resolve_dataset
from lom.data.batches import ObservationNormalizer
from lom.data.types import DatasetSpec
from lom.training.evaluation import evaluate
from lom.training.trainer import EVAL_SEED_STRIDE

# References unlike any built-in ones, so that a score computed with other references, or without subtracting
# the minimum, shows.
REF_MIN, REF_MAX = -20.0, 300.0
SEED, STEPS, EPISODES = 2, 20, 3


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    """BC trained briefly on a small Hopper file with its own reference scores; evaluated in Hopper-v4, where an
    untrained policy falls after a few dozen steps with returns that differ from episode to episode."""
    folder = tmp_path_factory.mktemp("numbers")
    data = write_tiny_d4rl_file(folder / "hopper.hdf5", n_episodes=6, obs_dim=11, act_dim=3,
                                metadata={"ref_min_score": REF_MIN, "ref_max_score": REF_MAX})
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(folder / "cache"), "PYTHONUNBUFFERED": "1"}
    args = ["--agent", "BC", "--env_name", "Hopper-v4", "--dataset_path", str(data), "--seed", str(SEED),
            "--training_steps", str(STEPS), "--eval_every", "10", "--eval_episodes", str(EPISODES),
            "--hidden_width", "16", "--critic_batch_size", "64", "--actor_batch_size", "64", "--log_every", "10",
            "--log_path", str(folder / "runs")]
    done = train(args, run_env)
    assert done.returncode == 0, done.stderr
    return run_dir_of(args, run_env), data, run_env


def test_metrics_scores_are_the_d4rl_normalisation_of_the_returns_with_the_files_references(hopper_run):
    run_dir, data, _ = hopper_run
    with h5py.File(data) as f:
        ref_min, ref_max = float(f["metadata/ref_min_score"][()]), float(f["metadata/ref_max_score"][()])
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [10, 20]
    for row in rows:
        expected = 100 * (float(row["return_mean"]) - ref_min) / (ref_max - ref_min)
        assert float(row["normalized_score"]) == pytest.approx(expected, rel=1e-12)
        assert float(row["normalized_score_std"]) == pytest.approx(100 * float(row["return_std"]) / (ref_max - ref_min),
                                                                   rel=1e-12)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["final_normalized_score"] == float(rows[-1]["normalized_score"])
    assert results["final_return"] == float(rows[-1]["return_mean"])
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["ref_min_score"], config["ref_max_score"]) == (ref_min, ref_max)


def test_lom_evaluate_with_the_training_evaluations_seed_reproduces_the_final_score(hopper_run):
    run_dir, _, run_env = hopper_run
    final = json.loads((run_dir / "results.json").read_text())
    with open(run_dir / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["return_std"]) > 0  # the episodes differ, so agreeing on all of them is no coincidence
    seed = SEED * EVAL_SEED_STRIDE + STEPS  # the seed of the run's last evaluation
    out = subprocess.run([sys.executable, "-m", "lom.evaluate", str(run_dir), "--episodes", str(EPISODES),
                          "--seed", str(seed)], cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = re.search(r"return (\S+) ± (\S+), normalised score (\S+) ± (\S+) over (\d+) episodes", out.stdout)
    assert printed, out.stdout
    assert printed.groups() == (f"{final['final_return']:.2f}", f"{float(last['return_std']):.2f}",
                                f"{final['final_normalized_score']:.1f}", f"{float(last['normalized_score_std']):.1f}",
                                str(EPISODES))


HOPPER_WEIGHTS = 0.5 * torch.randn(11, 3, generator=torch.Generator().manual_seed(0))


def hopper_policy(obs: torch.Tensor) -> torch.Tensor:
    """A fixed linear policy: Hopper falls after 20-odd steps, not all at the same step."""
    return torch.tanh(obs @ HOPPER_WEIGHTS)


def fork_policy(obs: torch.Tensor) -> torch.Tensor:
    """Towards the gap at x = 3 from starts right of 0 (through it after ~34 steps, return 0.5), towards x = −4
    from the others, too slowly to get there in the 40 steps (cut by the time limit, return 0)."""
    gap_x = torch.where(obs[:, 0] > 0, 3.0, -4.0)
    return torch.stack([0.5 * (gap_x - obs[:, 0]), torch.where(gap_x > 0, 0.3, 0.2)], 1).clamp(-1, 1)


HOPPER = DatasetSpec(name="hopper-file", source="file", env_id="Hopper-v4", ref_min_score=REF_MIN,
                     ref_max_score=REF_MAX, max_episode_steps=1000)


@pytest.mark.parametrize("spec, policy, obs_dim", [
    (HOPPER, hopper_policy, 11),
    (resolve_dataset("multimodal-fork-v0"), fork_policy, 2),
], ids=["hopper", "fork"])
def test_vectorised_evaluation_equals_one_episode_at_a_time_when_episodes_end_at_different_steps(spec, policy,
                                                                                                obs_dim):
    normalizer = ObservationNormalizer(torch.zeros(obs_dim), torch.ones(obs_dim))
    batch_sizes = []

    def run(vectorized: bool):
        """The result, and the number of policy calls times states per call: steps summed over the episodes
        sequentially, the longest episode's steps times the number of episodes vectorised."""
        batch_sizes.clear()
        how = evaluate if vectorized else evaluate_one_by_one
        result = how(lambda obs: batch_sizes.append(len(obs)) or policy(obs), normalizer, spec, episodes=8, seed=3,
                     device=torch.device("cpu"))
        return result, sum(batch_sizes)

    (vectorised, padded_steps), (sequential, steps) = run(True), run(False)
    assert steps < padded_steps, "every episode has the same length"
    assert vectorised.returns.tolist() == sequential.returns.tolist()
    assert vectorised.normalized_scores.tolist() == sequential.normalized_scores.tolist()
    assert len(set(sequential.returns.tolist())) > 1
