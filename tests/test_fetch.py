"""The Fetch datasets: deterministic demonstrators whose recorded rewards the evaluation env gives again, several
modes of different worth, the normal loader, the modes table and a tiny training run. The datasets here are small
copies (SMALL_EPISODES episodes per task, written into a temporary cache), so that every test is quick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import h5py
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lom.data import load_transitions, resolve_dataset
from lom.envs import make_env
from lom.fetch import behaviour, dataset as fetch_dataset, modes as fetch_modes, world

REPO = Path(__file__).resolve().parents[1]
NAMES = fetch_dataset.DATASET_NAMES
SMALL_EPISODES = 24
OBS_DIM = {"fetch-reach-multimodal-v0": 10, "fetch-push-multimodal-v0": 25, "fetch-pickandplace-multimodal-v0": 25}


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    """A cache folder holding each dataset (seed 0) made with SMALL_EPISODES episodes; LOM_CACHE_DIR points at it."""
    cache = tmp_path_factory.mktemp("fetch-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOM_CACHE_DIR", str(cache))
        patch.setattr(behaviour, "NUM_EPISODES", dict.fromkeys(behaviour.NUM_EPISODES, SMALL_EPISODES))
        for name in NAMES:
            fetch_dataset.dataset_path(name, progress=False)
        yield cache


def read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        arrays = {key: f[key][()] for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                                              "timeouts", "infos/mode", "infos/episode")}
        arrays.update({key: f[f"metadata/{key}"][()] for key in ("episode_reset_seeds", "episode_modes")})
    return arrays


def episode_rows(data: dict[str, np.ndarray], episode: int) -> np.ndarray:
    return np.flatnonzero(data["infos/episode"] == episode)


@pytest.mark.parametrize("name", NAMES)
def test_demonstrators_are_deterministic_given_a_seed(name):
    task = world.TASKS[name]
    first, modes, seeds = behaviour.generate_episodes(task, seed=5, num_episodes=4)
    again, modes_again, seeds_again = behaviour.generate_episodes(task, seed=5, num_episodes=4)
    other, _, _ = behaviour.generate_episodes(task, seed=6, num_episodes=4)
    assert np.array_equal(modes, modes_again) and np.array_equal(seeds, seeds_again)
    for a, b in zip(first, again):
        assert np.array_equal(a.observations, b.observations) and np.array_equal(a.actions, b.actions)
        assert np.array_equal(a.rewards, b.rewards)
    assert not np.array_equal(first[0].actions[:3], other[0].actions[:3])


@pytest.mark.parametrize("name", NAMES)
def test_every_recorded_episode_is_scored_the_same_by_the_evaluation_env(name, small_cache):
    """Replaying an episode's actions from its reset seed in the env the evaluator builds gives back its
    observations, rewards and ends, step for step; and every mode appears."""
    data = read(fetch_dataset.dataset_path(name))
    env = make_env(resolve_dataset(name))
    assert set(data["episode_modes"]) == {0, 1, 2}
    for episode, reset_seed in enumerate(data["episode_reset_seeds"]):
        rows = episode_rows(data, episode)
        obs, _ = env.reset(seed=int(reset_seed))
        np.testing.assert_array_equal(obs, data["observations"][rows[0]])
        for row in rows:
            obs, reward, terminated, truncated, _ = env.step(data["actions"][row])
            np.testing.assert_array_equal(obs, data["next_observations"][row])
            assert np.float32(reward) == data["rewards"][row]
            assert terminated == data["terminals"][row] and truncated == data["timeouts"][row]
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_each_noise_free_mode_reaches_its_own_zone_for_its_worth(name):
    task = world.TASKS[name]
    env = world.MultimodalFetchEnv(name)
    for mode in range(len(task.zones)):
        episode = behaviour.run_episode(env, behaviour.demonstrator(task, mode, np.random.default_rng(0), noise=0.0),
                                        reset_seed=11 + mode)
        assert episode.zone == mode and episode.terminated and episode.total == pytest.approx(task.worths[mode])
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_the_best_mode_is_the_rarest_and_the_modes_are_worth_different_returns(name):
    task = world.TASKS[name]
    assert len(task.zones) >= 3 and len(set(task.worths)) == len(task.worths)
    best = int(np.argmax(task.worths))
    assert behaviour.MODE_PROBS[best] == min(behaviour.MODE_PROBS)
    assert len(set(behaviour.MODE_PROBS)) == len(behaviour.MODE_PROBS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weights", [None, behaviour.MODE_PROBS])
def test_averaging_the_modes_reaches_no_zone(name, weights):
    env = world.MultimodalFetchEnv(name)
    episode = behaviour.run_episode(env, behaviour.mean_of_modes_policy(env.task, weights), reset_seed=50)
    assert episode.zone == world.NO_ZONE and episode.total == 0.0
    env.close()


def test_standing_still_reaches_no_zone_and_the_observation_hides_the_mode():
    """No zone at the start; and the start observations of two episodes from one reset seed are the same whichever
    mode then runs (the mode is not in the state)."""
    task = world.TASKS["fetch-push-multimodal-v0"]
    env = world.MultimodalFetchEnv(task.name)
    still = behaviour.run_episode(env, lambda obs: np.zeros(4, np.float32), reset_seed=3)
    assert still.zone == world.NO_ZONE and still.total == 0.0 and len(still.actions) == world.MAX_EPISODE_STEPS
    starts = [behaviour.run_episode(env, behaviour.demonstrator(task, m, np.random.default_rng(0)), 3).observations[0]
              for m in range(3)]
    assert all(np.array_equal(starts[0], s) for s in starts[1:])
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_classify_episode_names_the_zone_each_episode_went_for(name, small_cache):
    task = world.TASKS[name]
    data = read(fetch_dataset.dataset_path(name))
    for episode, mode in enumerate(data["episode_modes"]):
        rows = episode_rows(data, episode)
        visited = np.vstack([data["observations"][rows], data["next_observations"][rows[-1:]]])
        if data["terminals"][rows[-1]]:
            assert world.classify_episode(visited, task) == mode
    start = data["observations"][:1]
    assert world.classify_episode(np.vstack([start, start]), task) == world.NO_ZONE
    halfway = start.copy()
    halfway[0, task.scored] = 0.3 * start[0, task.scored] + 0.7 * task.zone_array[2]  # most of the way to zone 2
    assert world.classify_episode(np.vstack([start, halfway]), task) == 2


@pytest.mark.parametrize("name", NAMES)
def test_the_dataset_loads_through_the_normal_loader(name, small_cache):
    spec = resolve_dataset(name.upper())
    assert spec.name == name and spec.source == "builtin" and spec.max_episode_steps == world.MAX_EPISODE_STEPS
    assert (spec.ref_min_score, spec.ref_max_score) == fetch_dataset.REFERENCES[name]
    transitions = load_transitions(spec, progress=False)
    n = len(transitions.observations)
    assert transitions.observations.shape == (n, OBS_DIM[name]) and transitions.actions.shape == (n, 4)
    assert np.abs(transitions.actions).max() <= 1.0
    env = make_env(spec, seed=0)
    assert env.observation_space.shape == (OBS_DIM[name],) and env.action_space.shape == (4,)
    assert env.spec.max_episode_steps == world.MAX_EPISODE_STEPS
    env.close()


@pytest.mark.filterwarnings("ignore:.*Box observation space m")  # its bounds are infinite, as Fetch's own are
def test_the_env_passes_gymnasium_checks_and_is_registered():
    import lom.envs  # noqa: F401  (registers the env ids)

    env = gymnasium.make(world.TASKS["fetch-pickandplace-multimodal-v0"].env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_the_modes_command_prints_every_mode_with_share_and_return(small_cache, capsys):
    fetch_modes.main(["fetch-reach-multimodal-v0"])
    out = capsys.readouterr().out
    assert "3 modes" in out and "left" in out and "back-right" in out and "front-right" in out
    rows = fetch_modes.mode_table("fetch-reach-multimodal-v0")
    assert [r["worth"] for r in rows] == [1.0, 0.6, 0.3]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["mean_return"] == pytest.approx(r["worth"] * r["success"]) for r in rows)


@pytest.mark.parametrize("name, agent", [("fetch-push-multimodal-v0", "BC"), ("fetch-reach-multimodal-v0", "IQL"),
                                         ("fetch-pickandplace-multimodal-v0", "LOM")])
def test_a_tiny_training_run_trains_and_evaluates(name, agent, small_cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(small_cache), "WANDB_MODE": "offline"}
    small = ["--gmm_steps", "20", "--gmm_batch_size", "64", "--mode_batch_size", "64"] if agent == "LOM" else []
    out = subprocess.run([sys.executable, "train.py", "--env_name", name, "--agent", agent, "--training_steps", "50",
                          "--eval_every", "50", "--eval_episodes", "1", *small, "--log_path", str(tmp_path)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.rglob("metrics.csv")), out.stdout
