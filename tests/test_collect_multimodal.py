"""The multimodal locomotion task: `lom.collect --env_kwargs` trains on another objective, `lom.collect.multimodal`
mixes collections' policies scored by one env, `lom.collect.directions` reads an episode's running direction."""

from __future__ import annotations

import csv
import json

import gymnasium
import h5py
import numpy as np
import pytest
import torch
from test_collect import ENV_ID, EPISODE_STEPS, FLAGS, _arrays, _file, finished_run  # noqa: F401  (a fixture)

from lom.collect import collection as collect, directions, multimodal
from lom.collect.sac import (
    EVAL_CSV_NAME,
    TanhGaussianActor,
    actor_policy,
    load_checkpoint,
    make_online_env,
    online_config_dict,
    rollout,
)
from lom.data import load_transitions, resolve_dataset
from lom.errors import EXIT_USAGE

pytestmark = pytest.mark.filterwarnings("ignore:.*is out of date")  # gymnasium's notice about the v4 models
BACKWARDS = ["--env_kwargs", "forward_reward_weight=-1"]
EPISODES = 8
MIX_FLAGS = ["--env", ENV_ID, "--shares", "0.25", "0.75", "--names", "forward", "backward", "--episodes",
             str(EPISODES), "--max_episode_steps", str(EPISODE_STEPS), "--reference_episodes", "2", "--no_progress"]
# collect_config.json of the HalfCheetah collection made before --env_kwargs existed (`python -m lom.collect --env
# HalfCheetah-v4 --steps 150000 --transitions 200000 --threads 1 --checkpoint_every 10000 --no_progress --out DIR`).
OLDER_CONFIG = {
    "medium_fraction": 0.3333333333333333,
    "reference_episodes": 10,
    "training": {"env_id": "HalfCheetah-v4", "eval_episodes": 10, "eval_every": 10000, "learning_starts": 10000,
                 "max_episode_steps": None, "sac": {"batch_size": 256, "gamma": 0.99, "hidden": 256, "init_alpha": 1.0,
                                                    "lr": 0.0003, "tau": 0.005}, "seed": 0, "steps": 150000},
    "transitions": 200000,
}


@pytest.fixture(scope="module")
def backward_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("backward")
    assert collect.main([*FLAGS, *BACKWARDS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mix_run(finished_run, backward_run, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("mix")
    assert multimodal.main([*MIX_FLAGS, "--parts", str(finished_run), str(backward_run), "--out", str(out)]) == 0
    return out / "halfcheetah-v4_multimodal.hdf5"


def _scoring_env(**kwargs) -> gymnasium.Env:
    return make_online_env(ENV_ID, EPISODE_STEPS, kwargs)


# ---------------------------------------------------------------------------------------------------- --env_kwargs


def test_env_kwargs_reach_training_evaluation_and_every_file(backward_run):
    assert json.loads((backward_run / collect.CONFIG_NAME).read_text())["training"]["env_kwargs"] == {
        "forward_reward_weight": -1}
    for kind in collect.KINDS:
        with h5py.File(_file(backward_run, kind), "r") as f:
            assert f["metadata/env_kwargs"][()].decode() == '{"forward_reward_weight": -1}'
    # The expert file's first episode, replayed from its reset seed: the backwards env gives its rewards, and the
    # plain env the same run with the forward term's sign flipped (the two sum to twice the control cost).
    arrays = _arrays(_file(backward_run, "expert"))
    actions = arrays["actions"][:EPISODE_STEPS]
    replayed = {}
    for name, env in (("backwards", _scoring_env(forward_reward_weight=-1)), ("plain", _scoring_env())):
        obs = env.reset(seed=collect.EXPERT_SEED)[0]
        np.testing.assert_array_equal(obs.astype(np.float32), arrays["observations"][0])
        replayed[name] = np.array([env.step(a)[1] for a in actions])
    np.testing.assert_array_equal(replayed["backwards"].astype(np.float32), arrays["rewards"][:EPISODE_STEPS])
    control_cost = 0.1 * np.square(actions.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(replayed["backwards"] + replayed["plain"], -2 * control_cost, atol=1e-6)
    # SAC's evaluations ran in the backwards env: the first snapshot's eval return, recomputed there.
    state = load_checkpoint(backward_run)
    assert state["config"]["env_kwargs"] == {"forward_reward_weight": -1}
    actor = TanhGaussianActor(17, 6, 32)
    actor.load_state_dict(state["log"]["snapshots"][0])
    step = state["log"]["evals"][0]["step"]
    returns = rollout(_scoring_env(forward_reward_weight=-1), actor_policy(actor, True), 1_000_000 + step,
                      episodes=2).episode_returns
    with open(backward_run / EVAL_CSV_NAME, newline="") as f:
        assert float(next(csv.DictReader(f))["return_mean"]) == float(returns.mean())


def test_a_rerun_that_changes_env_kwargs_is_refused(finished_run, backward_run, capsys):  # noqa: F811
    before = {p.name: p.stat().st_mtime_ns for p in backward_run.iterdir()}
    assert collect.main([*FLAGS, "--out", str(backward_run)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "training.env_kwargs: {'forward_reward_weight': -1} there, None now" in err
    assert collect.main([*FLAGS, *BACKWARDS, "--out", str(finished_run)]) == EXIT_USAGE
    assert "training.env_kwargs: None there" in capsys.readouterr().err
    # The same objective spelt as a float is the same collection: it only reports.
    assert collect.main([*FLAGS, "--env_kwargs", "forward_reward_weight=-1.0", "--out", str(backward_run)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in backward_run.iterdir()} == before


def test_bad_env_kwargs_cost_one_line_and_write_nothing(tmp_path, capsys):
    for value, message in (("forward_reward_weight", "takes KEY=VALUE pairs"), ("bogus=1", "refuses --env_kwargs"),
                           ("max_episode_steps=5", "parameter of gymnasium.make")):
        out = tmp_path / value
        assert collect.main([*FLAGS, "--env_kwargs", value, "--out", str(out)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "--env_kwargs" in err and message in err and err.count("\n") == 1
        assert not out.exists()
    assert collect.parse_env_kwargs(["a=-1", "b=0.5", "c=True", "d=false", "e=text"]) == {
        "a": -1, "b": 0.5, "c": True, "d": False, "e": "text"}
    assert isinstance(collect.parse_env_kwargs(["a=-1"])["a"], int)


def test_without_env_kwargs_the_identity_is_what_it_was():
    """An existing collection's collect_config.json (no env_kwargs key) still equals a rerun of its command."""
    args = collect.build_parser().parse_args(["--env", "HalfCheetah-v4", "--steps", "150000", "--transitions",
                                              "200000", "--threads", "1", "--checkpoint_every", "10000",
                                              "--no_progress", "--out", "unused"])
    config = collect.config_from_args(args)
    assert config.training.env_kwargs == {}
    assert json.loads(json.dumps(config.identity())) == OLDER_CONFIG
    assert "env_kwargs" not in online_config_dict(config.training)  # what checkpoints compare on resume
    backwards = collect.config_from_args(collect.build_parser().parse_args([*FLAGS, *BACKWARDS, "--out", "unused"]))
    assert backwards.identity()["training"]["env_kwargs"] == {"forward_reward_weight": -1}


# ---------------------------------------------------------------------------------------------------- the mix


def test_the_mix_has_the_shares_asked_and_loads(mix_run, finished_run, backward_run):  # noqa: F811
    arrays = _arrays(mix_run)
    with h5py.File(mix_run, "r") as f:
        meta = {key: f["metadata"][key][()] for key in f["metadata"]}
        rows_mode, rows_episode = f["infos/mode"][()], f["infos/episode"][()]
    modes = meta["episode_modes"]
    assert np.bincount(modes).tolist() == [2, 6] and meta["mode_shares"].tolist() == [0.25, 0.75]
    assert len(arrays["rewards"]) == EPISODES * EPISODE_STEPS
    np.testing.assert_array_equal(rows_episode, np.repeat(np.arange(EPISODES), EPISODE_STEPS))
    np.testing.assert_array_equal(rows_mode, modes[rows_episode])
    assert [s.decode() for s in meta["mode_names"]] == ["forward", "backward"]
    assert [json.loads(s) for s in meta["mode_env_kwargs"]] == [{}, {"forward_reward_weight": -1}]
    assert [s.decode() for s in meta["mode_sources"]] == [str(finished_run), str(backward_run)]
    assert meta["mode_policy_steps"].tolist() == [400, 400] and meta["env_id"].decode() == ENV_ID
    returns = meta["episode_returns"]
    np.testing.assert_allclose(returns, [arrays["rewards"][rows_episode == k].astype(np.float64).sum()
                                         for k in range(EPISODES)], rtol=1e-5)
    np.testing.assert_allclose(meta["mode_returns"], [returns[modes == k].mean() for k in (0, 1)])
    # References: the random policy's and the best part's deterministic return, from lom.collect's reference
    # seeds, so the forward part (the scoring env's own collection) gets that collection's references.json.
    references = json.loads((finished_run / collect.REFERENCES_NAME).read_text())
    assert meta["ref_min_score"] == references["random_return"]
    assert meta["mode_reference_returns"][0] == references["expert_return"]
    assert meta["ref_max_score"] == meta["mode_reference_returns"].max()
    assert int(meta["best_mode"]) == int(np.argmax(meta["mode_reference_returns"]))
    spec = resolve_dataset(ENV_ID, dataset_path=str(mix_run))
    assert (spec.ref_min_score, spec.ref_max_score, spec.kind) == (meta["ref_min_score"], meta["ref_max_score"],
                                                                   "multimodal")
    assert len(load_transitions(spec, progress=False)) > 0


def test_the_mix_replays_in_the_scoring_env_and_its_labels_name_the_acting_policy(mix_run, finished_run, backward_run):  # noqa: F811,E501
    arrays = _arrays(mix_run)
    with h5py.File(mix_run, "r") as f:
        modes, seeds = f["metadata/episode_modes"][()], f["metadata/episode_seeds"][()]
    env = _scoring_env()
    actors = [multimodal.load_part(multimodal.Part(folder, 0.5, folder.name), ENV_ID, env).actor
              for folder in (finished_run, backward_run)]
    for k in range(EPISODES):
        rows = slice(k * EPISODE_STEPS, (k + 1) * EPISODE_STEPS)
        obs, actions = arrays["observations"][rows], arrays["actions"][rows]
        # The scoring env gives the recorded observations and rewards when the actions are replayed.
        np.testing.assert_array_equal(env.reset(seed=int(seeds[k]))[0].astype(np.float32), obs[0])
        stepped = [env.step(a) for a in actions]
        np.testing.assert_array_equal(np.array([s[1] for s in stepped], np.float32), arrays["rewards"][rows])
        np.testing.assert_array_equal(np.array([s[0] for s in stepped], np.float32), arrays["next_observations"][rows])
        # The labelled part's policy, sampling from the episode's seed, chose exactly these actions; the other not.
        for mode, actor in enumerate(actors):
            generator = torch.Generator().manual_seed(int(seeds[k]))
            with torch.no_grad():
                resampled = np.stack([actor.act(torch.as_tensor(o), False, generator).numpy() for o in obs])
            assert np.array_equal(resampled, actions) == (mode == modes[k])


def test_a_rerun_reports_and_other_mix_settings_are_refused(mix_run, finished_run, backward_run, capsys):  # noqa: F811
    parts = ["--parts", str(finished_run), str(backward_run), "--out", str(mix_run.parent)]
    before = {p.name: p.stat().st_mtime_ns for p in mix_run.parent.iterdir()}
    assert multimodal.main([*MIX_FLAGS, *parts]) == 0
    out = capsys.readouterr().out
    assert "(existing)" in out and "forward_reward_weight=-1" in out and "25.0%" in out and "75.0%" in out
    with h5py.File(mix_run, "r") as f:
        best = f["metadata/best_mode"][()]
    assert f"the rarest: {'yes' if best == 0 else 'no'}" in out
    assert multimodal.main([*MIX_FLAGS, *parts, "--seed", "1"]) == EXIT_USAGE
    assert "seed: 0 there, 1 now" in capsys.readouterr().err
    swapped = ["--shares", "0.75", "0.25"]
    assert multimodal.main([*MIX_FLAGS, *parts, *swapped]) == EXIT_USAGE
    assert "parts[0].share: 0.25 there, 0.75 now" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in mix_run.parent.iterdir()} == before
    for bad, message in ((["--shares", "0.5", "0.6"], "sum to 1"), (["--names", "a"], "one per part"),
                         (["--policy_steps", "400", "123"], "no policy snapshot at step 123")):
        assert multimodal.main([*MIX_FLAGS, *parts[:-1], str(mix_run.parent / "other"), *bad]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_episode_counts_follow_the_shares():
    assert multimodal.episode_counts([0.25, 0.75], 200).tolist() == [50, 150]
    assert multimodal.episode_counts([1 / 3, 1 / 3, 1 / 3], 10).tolist() == [4, 3, 3]
    assert multimodal.episode_counts([0.1, 0.9], 5).tolist() == [1, 4]


# ---------------------------------------------------------------------------------------------------- directions


@pytest.mark.parametrize("env_id", ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"])
def test_the_x_velocity_index_is_the_roots_x_velocity(env_id):
    env = gymnasium.make(env_id).unwrapped
    env.reset(seed=0)
    for speed in (2.5, -1.5):
        qvel = env.init_qvel.copy()
        qvel[0] = speed
        env.set_state(env.init_qpos, qvel)
        obs = env._get_obs()
        assert obs[directions.x_velocity_index(env_id)] == speed
        assert np.flatnonzero(obs == speed).tolist() == [directions.x_velocity_index(env_id)]


def test_running_direction_reads_the_mean_x_velocity():
    def episode(speeds):
        obs = np.zeros((len(speeds), 17))
        obs[:, 8] = speeds
        return obs

    assert directions.running_direction(ENV_ID, episode([6.0, 5.0, 7.0])) == directions.FORWARD
    assert directions.running_direction(ENV_ID, episode([-3.0, 1.0, -4.0])) == directions.BACKWARD
    assert directions.running_direction(ENV_ID, episode([2.0, -2.0, 0.3])) == directions.NOWHERE
    assert directions.running_direction(ENV_ID, episode([2.0, -2.0, 0.3]), min_speed=0) == directions.FORWARD
    obs = np.concatenate([episode([6.0] * 3), episode([-4.0] * 2), episode([0.1] * 4)])
    labels = directions.episode_directions(ENV_ID, obs, np.repeat([0, 1, 2], [3, 2, 4]))
    assert labels.tolist() == [directions.FORWARD, directions.BACKWARD, directions.NOWHERE]
    with pytest.raises(ValueError, match="no known x-velocity"):
        directions.x_velocity_index("Pendulum-v1")


def test_a_halfcheetah_pushed_backwards_runs_backwards():
    """In the real env: an episode whose root is given a backwards velocity at every step reads as backwards."""
    env = gymnasium.make(ENV_ID).unwrapped
    env.reset(seed=0)
    rows = []
    for _ in range(20):
        qvel = env.data.qvel.copy()
        qvel[0] = -3.0
        env.set_state(env.data.qpos.copy(), qvel)
        rows.append(env.step(np.zeros(6))[0])
    assert directions.running_direction(ENV_ID, np.array(rows)) == directions.BACKWARD
