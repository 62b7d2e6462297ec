"""IQL's reward scale on locomotion data: rewards × 1000 / (highest − lowest episode return), recorded per run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train import env, run_dir_of, train  # noqa: F401  (env is a fixture)

from lom.config import LOM_DEFAULT, TrainConfig
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.transitions import build_transitions, episode_returns, return_range_scale
from lom.errors import LOMError
from lom.io import write_d4rl_hdf5

# (steps, reward per step, how the episode ends). The timed-out episode's last row is dropped (its next state
# belongs to no transition, as in d4rl's qlearning_dataset), so its reward there counts for nothing.
EPISODES = [(5, 2.0, "terminal"), (4, -1.0, "terminal"), (6, 3.0, "timeout"), (3, 0.5, "cut")]
# 6 × 3 counts only 5 rows; the file's last row has no next state either, so the cut episode keeps 2 of its 3.
RETURNS = [10.0, -4.0, 15.0, 1.0]
HOPPER_OBS, HOPPER_ACT = 11, 3


def episodes_file(path, obs_dim=HOPPER_OBS, act_dim=HOPPER_ACT):
    rng = np.random.default_rng(0)
    parts = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts")}
    for steps, reward, end in EPISODES:
        states = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
        last = np.arange(steps) == steps - 1
        rewards = np.full(steps, reward, dtype=np.float32)
        if end == "timeout":
            rewards[-1] = 100.0  # dropped with its row: must not count
        parts["observations"].append(states[:-1])
        parts["next_observations"].append(states[1:])
        parts["actions"].append(rng.uniform(-1, 1, (steps, act_dim)).astype(np.float32))
        parts["rewards"].append(rewards)
        parts["terminals"].append(last & (end == "terminal"))
        parts["timeouts"].append(last & (end == "timeout"))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    write_d4rl_hdf5(path, arrays)
    return arrays


def test_episode_returns_and_the_return_range_scale(tmp_path):
    transitions = build_transitions(episodes_file(tmp_path / "d.hdf5"), None, "test")
    np.testing.assert_allclose(episode_returns(transitions), RETURNS)
    assert return_range_scale(transitions, 1000.0) == pytest.approx(1000.0 / (15.0 - -4.0))

    data = DeviceDataset(transitions, ObservationNormalizer.fit(transitions.observations, True),
                         torch.device("cpu"), reward_scale=0.5)
    np.testing.assert_allclose(data.rew.numpy(), transitions.rewards * 0.5)


def test_datasets_whose_episodes_all_return_the_same_are_refused(tmp_path):
    arrays = episodes_file(tmp_path / "d.hdf5")
    arrays["rewards"][:] = 0.0
    with pytest.raises(LOMError, match="--reward_scaling none"):
        return_range_scale(build_transitions(arrays, None, "test"), 1000.0)


@pytest.mark.parametrize("agent, dataset, env_id, scaling, scaled", [
    ("IQL", "hopper-medium-v2", "Hopper-v4", "auto", True),
    ("IQL", "my-file", "HalfCheetah-v5", "auto", True),
    ("IQL", "multimodal-fork-v0", "lom/MultimodalFork-v0", "auto", False),
    ("IQL", "hopper-medium-v2", "Hopper-v4", "none", False),
    ("BC", "walker2d-v4_full-replay", "Walker2d-v4", "auto", False),
    ("TD3BC", "walker2d-v4_full-replay", "Walker2d-v4", "auto", False),
    ("BC", "walker2d-medium-v2", "Walker2d-v4", "return_range", True),
    # LOM (preset lom): scaled on every dataset whatever its name, except the built-in benchmark's own row
    ("LOM", "halfcheetah-full-replay-v2", "HalfCheetah-v4", "auto", True),
    ("LOM", "halfcheetah-v4_full-replay", "HalfCheetah-v4", "auto", True),
    ("LOM", "halfcheetah-v4_full-replay", "HalfCheetah-v4", "none", False),
    ("LOM", "my-file", "Ant-v4", "auto", True),
    ("LOM", "multimodal-fork-v0", "lom/MultimodalFork-v0", "auto", False),
])
def test_which_runs_scale_their_rewards(agent, dataset, env_id, scaling, scaled):
    assert TrainConfig(agent=agent, reward_scaling=scaling).scales_rewards(dataset, env_id) == scaled


def test_iql_run_on_locomotion_data_records_its_reward_scale(env, tmp_path):  # noqa: F811
    episodes_file(tmp_path / "hopper.hdf5")
    base = ["--env_name", "Hopper-v4", "--dataset_path", str(tmp_path / "hopper.hdf5"), "--agent", "IQL",
            "--training_steps", "10", "--eval_every", "10", "--eval_episodes", "1"]
    for flags, expected in (([], 1000.0 / 19.0), (["--reward_scaling", "none"], 1.0)):
        args = [*base, *flags, "--log_path", str(tmp_path / "runs" / str(expected))]
        out = train(args, env)
        assert out.returncode == 0, out.stderr
        config = json.loads((run_dir_of(args, env) / "config.json").read_text())
        assert config["reward_scale"] == pytest.approx(expected)


def test_lom_on_a_file_scales_rewards_and_weighs_softly(env, tmp_path):  # noqa: F811
    path = tmp_path / "my_data.hdf5"
    episodes_file(path)
    args = ["--env_name", "Hopper-v4", "--dataset_path", str(path), "--training_steps", "5", "--gmm_steps", "5",
            "--eval_every", "5", "--eval_episodes", "1", "--hidden_width", "16", "--gmm_hidden_width", "16",
            "--gmm_batch_size", "8", "--mode_batch_size", "8", "--log_path", str(tmp_path / "runs")]
    out = train(args, env)
    assert out.returncode == 0, out.stderr
    config = json.loads((run_dir_of(args, env) / "config.json").read_text())
    assert config["reward_scale"] == pytest.approx(1000.0 / 19.0)
    assert config["beta"] == LOM_DEFAULT.beta
    assert config["num_components"] == 10  # Hopper's 3-dimensional actions: the one rule's N for few dimensions
