"""Evaluation environments: D4RL's MuJoCo tasks and the fork, built from a DatasetSpec, acting in [-1, 1]."""

import gymnasium
import numpy as np
import pytest

from lom.data.types import DatasetSpec
from lom.envs import make_env, make_vector_env
from lom.errors import LOMError
from lom.fork import dataset as fork_dataset


def spec_for(env_id, max_episode_steps=None):
    return DatasetSpec(name=f"test-{env_id}", source="file", env_id=env_id, ref_min_score=0.0, ref_max_score=1.0,
                       max_episode_steps=max_episode_steps)


FORK = DatasetSpec(name=fork_dataset.DATASET_NAME, source="builtin", env_id=fork_dataset.ENV_ID,
                   ref_min_score=fork_dataset.REF_MIN_SCORE, ref_max_score=fork_dataset.REF_MAX_SCORE,
                   max_episode_steps=fork_dataset.MAX_EPISODE_STEPS)
SHAPES = [("HalfCheetah-v4", 17, 6), ("Hopper-v4", 11, 3), ("Walker2d-v4", 17, 6), (fork_dataset.ENV_ID, 2, 2)]


@pytest.mark.parametrize(("env_id", "obs_dim", "act_dim"), SHAPES)
def test_make_env_resets_and_steps_with_unit_actions(env_id, obs_dim, act_dim):
    env = make_env(spec_for(env_id), seed=0)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(np.ones(act_dim, dtype=np.float32))
    assert obs.shape == (obs_dim,) and np.isfinite(reward)
    env.close()


@pytest.mark.parametrize(("env_id", "obs_dim", "act_dim"), SHAPES)
def test_vector_env_is_deterministic_given_the_seed(env_id, obs_dim, act_dim):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 2, act_dim)).astype(np.float32)

    def trajectory(seed):
        envs = make_vector_env(spec_for(env_id), num_envs=2, seed=seed)
        observations = [envs.reset()[0]]
        for step_actions in actions:
            observations.append(envs.step(step_actions)[0])
        envs.close()
        return np.stack(observations)

    first = trajectory(seed=3)
    assert first.shape == (4, 2, obs_dim)
    assert not np.array_equal(first[0, 0], first[0, 1])  # the copies are seeded differently
    np.testing.assert_array_equal(first, trajectory(seed=3))
    assert not np.array_equal(first[0], trajectory(seed=4)[0])


def test_make_env_seed_fixes_the_first_reset():
    first = make_env(FORK, seed=5).reset()[0]
    np.testing.assert_array_equal(first, make_env(FORK, seed=5).reset()[0])


def test_actions_are_rescaled_to_the_env_bounds():
    env = make_env(spec_for("Pendulum-v1"), seed=0)  # native torque bounds are [-2, 2]
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    assert env.unwrapped.last_u == pytest.approx(2.0)


def test_max_episode_steps_from_the_spec_truncates_episodes():
    env = make_env(spec_for(fork_dataset.ENV_ID, max_episode_steps=3), seed=0)
    env.reset()
    results = [env.step(np.zeros(2, dtype=np.float32)) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]


def test_fork_spec_uses_the_registered_time_limit():
    env = make_env(FORK)
    assert env.spec.max_episode_steps == fork_dataset.MAX_EPISODE_STEPS


def test_unknown_env_is_a_friendly_error():
    with pytest.raises(LOMError, match="NoSuchEnv-v0"):
        make_env(spec_for("NoSuchEnv-v0"))


def test_missing_mujoco_names_the_package(monkeypatch):
    def missing(*args, **kwargs):
        raise gymnasium.error.DependencyNotInstalled("mujoco is not installed")

    monkeypatch.setattr(gymnasium, "make", missing)
    with pytest.raises(LOMError, match=r"HalfCheetah-v4.*gymnasium\[mujoco\]"):
        make_env(spec_for("HalfCheetah-v4"))


def test_discrete_action_env_is_rejected():
    with pytest.raises(LOMError, match="CartPole-v1"):
        make_env(spec_for("CartPole-v1"))


def test_vector_env_needs_at_least_one_copy():
    with pytest.raises(LOMError, match="num_envs"):
        make_vector_env(FORK, num_envs=0, seed=0)


def test_mujoco_hides_its_settotalmass_notice_but_still_prints_other_warnings(capfd):
    env = make_env(spec_for("HalfCheetah-v4"), seed=0)
    env.unwrapped.data.qvel[:] = np.nan  # MuJoCo warns about an unstable simulation at the next step
    env.step(np.zeros(6, dtype=np.float32))
    env.close()
    printed = capfd.readouterr()
    assert "settotalmass" not in printed.out + printed.err
    assert "Nan, Inf or huge value in QVEL" in printed.err
