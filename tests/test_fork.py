"""The built-in multimodal fork: its data are multimodal, averaging their modes fails, and they are cached."""

import gymnasium
import h5py
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lom.data import resolve_dataset
import lom.envs  # noqa: F401  (registers the fork's env id with gymnasium)
from lom.errors import LOMError
from lom.fork import behaviour, dataset as fork_dataset, world


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def read(path):
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                                             "timeouts", "infos/mode")}


def episodes(data):
    """(start row, end row) of every episode."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    return np.concatenate([[0], ends[:-1] + 1]), ends


def test_dataset_has_three_distinct_action_modes_at_the_start():
    data = read(fork_dataset.fork_dataset_path(0))
    starts, _ = episodes(data)
    first_actions, modes = data["actions"][starts], data["infos/mode"][starts]
    assert np.all(np.abs(data["observations"][starts]) <= world.START_JITTER)  # all modes share the start states
    centres, spreads = [], []
    for k in range(len(world.GAP_X)):
        actions = first_actions[modes == k]
        assert len(actions) >= 100
        centres.append(actions.mean(axis=0))
        spreads.append(actions.std(axis=0).max())
    assert np.sum(modes == 0) < min(np.sum(modes == 1), np.sum(modes == 2))  # the best behaviour is the rarest
    distances = [np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :]]
    assert min(distances) > 0.4 and min(distances) > 2.5 * max(spreads)  # clusters well apart from each other


def test_modes_have_clearly_different_returns():
    data = read(fork_dataset.fork_dataset_path(0))
    starts, ends = episodes(data)
    returns = np.add.reduceat(data["rewards"], starts)
    modes = data["infos/mode"][starts]
    mean = [returns[modes == k].mean() for k in range(len(world.GAP_X))]
    assert mean[0] > 0.95 and 0.4 < mean[1] < 0.55 and 0.2 < mean[2] < 0.3
    assert returns[modes == behaviour.RANDOM_MODE].mean() < 0.05


def test_dataset_rows_chain_within_episodes_and_every_episode_ends_once():
    data = read(fork_dataset.fork_dataset_path(0))
    starts, ends = episodes(data)
    assert ends[-1] == len(data["rewards"]) - 1
    assert not np.any(data["terminals"] & data["timeouts"])
    inner = np.setdiff1d(np.arange(len(data["rewards"]) - 1), ends)
    np.testing.assert_array_equal(data["next_observations"][inner], data["observations"][inner + 1])
    assert np.all(ends - starts + 1 <= world.MAX_EPISODE_STEPS)
    assert np.all(np.abs(data["actions"]) <= 1.0)


def test_same_seed_gives_the_same_dataset_and_another_seed_a_different_one(cache, monkeypatch, tmp_path):
    first = read(fork_dataset.fork_dataset_path(0))
    monkeypatch.setenv("LOM_CACHE_DIR", str(tmp_path / "other"))
    again, other = read(fork_dataset.fork_dataset_path(0)), read(fork_dataset.fork_dataset_path(1))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert len(first["rewards"]) != len(other["rewards"]) or not np.array_equal(first["actions"], other["actions"])


def test_cached_dataset_is_reused_and_a_corrupt_one_regenerated(monkeypatch):
    path = fork_dataset.fork_dataset_path(0)
    original = path.read_bytes()

    def fail(*args):
        raise AssertionError("regenerated a valid cached dataset")

    with monkeypatch.context() as patch:
        patch.setattr(fork_dataset, "_write_dataset", fail)
        assert fork_dataset.fork_dataset_path(0) == path
    path.write_bytes(original[:1000])
    assert fork_dataset.fork_dataset_path(0) == path
    assert path.read_bytes() == original


def test_dataset_metadata_carries_env_and_reference_scores():
    with h5py.File(fork_dataset.fork_dataset_path(3), "r") as f:
        assert f["metadata/env_id"][()].decode() == fork_dataset.ENV_ID
        assert int(f["metadata/seed"][()]) == 3
        assert f["metadata/ref_min_score"][()] == fork_dataset.REF_MIN_SCORE
        assert f["metadata/ref_max_score"][()] == fork_dataset.REF_MAX_SCORE


def test_unwritable_cache_is_a_friendly_error(cache, monkeypatch):
    cache.parent.mkdir(parents=True, exist_ok=True)
    blocker = cache.parent / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LOM_CACHE_DIR", str(blocker))
    with pytest.raises(LOMError, match="LOM_CACHE_DIR"):
        fork_dataset.fork_dataset_path(0)


@pytest.mark.parametrize("weights", [None, (2.0, 1.0, 0.5), (3.8, 1.0, 0.46), (0.38, 0.45, 0.21)])
def test_averaging_the_modes_hits_the_wall(weights):
    # Equal weights (a unimodal imitator) and IQL-like exp(3 * advantage) weights, with and without data frequencies.
    assert behaviour.mean_return(behaviour.mean_of_modes_policy(weights), 1000, seed=0) == 0.0


def test_each_noise_free_mode_passes_its_own_gap():
    for k, reward in enumerate(world.GAP_REWARDS):
        modes = np.full(100, k)
        policy = lambda positions: behaviour.mode_actions(positions, modes)  # noqa: E731
        assert behaviour.mean_return(policy, 100, seed=0) == pytest.approx(reward)


def test_reference_scores_match_a_fresh_measurement():
    random_return = behaviour.mean_return(behaviour.uniform_policy(np.random.default_rng(7)), 50_000, seed=7)
    best = behaviour.behaviour_policy(np.zeros(20_000, dtype=int), np.random.default_rng(7))
    assert random_return == pytest.approx(fork_dataset.REF_MIN_SCORE, abs=5e-4)
    assert behaviour.mean_return(best, 20_000, seed=7) == pytest.approx(fork_dataset.REF_MAX_SCORE, abs=2e-3)


def test_a_perfect_policy_scores_exactly_100():
    spec = resolve_dataset("multimodal-fork-v0")
    assert fork_dataset.REF_MAX_SCORE == max(world.GAP_REWARDS) == 1.0
    assert spec.normalized_score(max(world.GAP_REWARDS)) == 100.0
    assert spec.normalized_score(fork_dataset.REF_MIN_SCORE) == 0.0


def test_diagonal_exit_pays_the_gap_it_left_by():
    start = np.array([[3.0 + world.GAP_HALF_WIDTH - 0.1, world.WALL_HIGH - 0.05]])
    next_positions, rewards, terminated = world.move(start, np.array([[1.0, 1.0]]))
    assert terminated[0] and rewards[0] == 0.5 and next_positions[0, 0] > 3.0 + world.GAP_HALF_WIDTH


def test_wall_stops_the_step_and_gaps_pay_their_reward():
    positions = np.array([[0.0, 3.9], [-4.0, 4.8], [3.0, 4.8], [7.0, 4.8], [0.0, 1.0]])
    actions = np.array([[0.0, 1.0]] * 5)
    next_positions, rewards, terminated = world.move(positions, actions)
    np.testing.assert_allclose(next_positions[0], [0.0, world.WALL_LOW])  # stopped at the wall face
    np.testing.assert_array_equal(rewards, [0.0, 1.0, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(terminated, [True, True, True, True, False])


def test_sliding_sideways_inside_a_gap_into_the_wall_crashes():
    next_positions, rewards, terminated = world.move(np.array([[-3.6, 4.5], [-4.0, 4.5]]), np.array([[1.0, 0.0]] * 2))
    np.testing.assert_array_equal(terminated, [True, False])
    np.testing.assert_array_equal(rewards, [0.0, 0.0])
    np.testing.assert_allclose(next_positions, [[-4.0 + world.GAP_HALF_WIDTH, 4.5], [-3.5, 4.5]])


def test_env_passes_gymnasium_checks_and_is_registered():
    env = gymnasium.make(fork_dataset.ENV_ID)
    assert env.spec.max_episode_steps == fork_dataset.MAX_EPISODE_STEPS
    check_env(env.unwrapped, skip_render_check=True)


def test_env_pays_the_best_gap_to_its_mode_and_nothing_to_the_average():
    env = gymnasium.make(fork_dataset.ENV_ID)
    for policy, expected in ((lambda p: behaviour.mode_actions(p, np.zeros(1, int)), 1.0),
                             (behaviour.mean_of_modes_policy(), 0.0)):
        obs, _ = env.reset(seed=0)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs[None].astype(np.float64))[0])
            total, done = total + reward, terminated or truncated
        assert terminated and total == expected
