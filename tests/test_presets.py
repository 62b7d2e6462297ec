"""`--preset lom|paper`: the authors' agent in one flag, and one default rule for LOM that no file name changes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from d4rl_server import serve_directory, write_tiny_d4rl_file
from test_reward_scale import episodes_file
from test_train import env, run_dir_of, train  # noqa: F401  (env is a fixture)

from lom.config import LOM_DEFAULT, PAPER_DEFAULT, PAPER_HYPERPARAMS, TrainConfig, preset_for
from lom.errors import LOMError

TINY = ["--training_steps", "5", "--gmm_steps", "5", "--eval_every", "5", "--eval_episodes", "1",
        "--hidden_width", "16", "--gmm_hidden_width", "16", "--gmm_batch_size", "8", "--mode_batch_size", "8"]


def trained_config(args, env) -> dict:  # noqa: F811
    out = train([*args, *TINY], env)
    assert out.returncode == 0, out.stderr
    return json.loads((run_dir_of([*args, *TINY], env) / "config.json").read_text())


def test_the_same_file_under_two_names_trains_with_the_same_hyperparameters(env, tmp_path):  # noqa: F811
    named = tmp_path / "hopper-v4_full-replay.hdf5"
    episodes_file(named)
    shutil.copy(named, tmp_path / "my_data.hdf5")
    configs = [trained_config(["--env_name", "Hopper-v4", "--dataset_path", str(tmp_path / name),
                               "--log_path", str(tmp_path / "runs")], env)
               for name in ("hopper-v4_full-replay.hdf5", "my_data.hdf5")]
    assert configs[0]["dataset"] != configs[1]["dataset"]
    assert configs[0]["hyperparameters"] == configs[1]["hyperparameters"]
    assert configs[0]["reward_scale"] == configs[1]["reward_scale"] == pytest.approx(1000.0 / 19.0)
    assert configs[0]["preset"] == "lom" and configs[0]["hyperparameters"]["num_components"] == 10


def test_paper_preset_on_a_d4rl_name_is_the_authors_agent_with_the_papers_row(env, tmp_path, monkeypatch):  # noqa: F811
    served = tmp_path / "server"
    write_tiny_d4rl_file(served / "hopper_full_replay-v2.hdf5", n_episodes=4, obs_dim=11, act_dim=3)
    args = ["--env_name", "hopper-full-replay-v2", "--log_path", str(tmp_path / "runs")]
    with serve_directory(served) as url:
        env = {**env, "LOM_DATASET_MIRROR": url}
        paper = trained_config([*args, "--preset", "paper"], env)
        ours = trained_config(args, env)
    assert paper["preset"] == "paper" and ours["preset"] == "lom"
    assert (paper["critic"], paper["weight_baseline"], paper["reward_scale"]) == ("sarsa", "policy", 1.0)
    hp = paper["hyperparameters"]
    assert (hp["num_critics"], hp["num_components"], hp["beta"], hp["weight_clip"], hp["min_component_weight"]) == (
        2, 10, 5.0, 50.0, 0.0)
    # Ours on the same name: the paper's K and N, our β on return-range-scaled rewards and the support floor.
    assert (ours["critic"], ours["weight_baseline"]) == ("expectile", "value") and ours["reward_scale"] != 1.0
    assert (ours["hyperparameters"]["num_components"], ours["hyperparameters"]["beta"],
            ours["hyperparameters"]["min_component_weight"]) == (10, 0.1, 0.05)
    # The two presets train in separate run folders, so a sweep can run both.
    assert run_dir_of([*args, *TINY, "--preset", "paper"], env).parent.name == "LOM-paper"


@pytest.mark.parametrize("name", ["hopper-v4_full-replay", "walker2d-v4_medium-replay", "my_data", "minari:x/y-v0"])
def test_data_without_a_paper_row_takes_one_rule_whatever_its_name(name):
    assert TrainConfig().resolve(name, action_dim=6).lom == LOM_DEFAULT
    paper = TrainConfig(preset="paper").resolve(name, action_dim=6)
    assert paper.lom == PAPER_DEFAULT and (paper.critic, paper.weight_baseline) == ("sarsa", "policy")
    assert TrainConfig().scales_rewards(name, "Ant-v4") and not TrainConfig(preset="paper").scales_rewards(name, "Ant-v4")


@pytest.mark.parametrize("action_dim, components", [(1, 10), (3, 10), (4, 2), (6, 2), (17, 2)])
def test_the_one_rule_takes_n_from_the_action_dimension_and_nothing_else(action_dim, components):
    cfg = TrainConfig().resolve("my_data", action_dim=action_dim)
    assert cfg.lom == dataclasses.replace(LOM_DEFAULT, num_components=components)
    assert (cfg.num_critics, cfg.beta, cfg.weight_clip, cfg.min_component_weight) == (1, 0.1, 50.0, 0.05)
    # The paper preset and D4RL names do not look at the action dimension.
    assert TrainConfig(preset="paper").resolve("my_data", action_dim=action_dim).lom == PAPER_DEFAULT
    assert TrainConfig().resolve("hopper-full-replay-v2", action_dim=action_dim).num_components == 10


def test_lom_default_without_an_action_dimension_asks_for_n_in_one_line():
    with pytest.raises(LOMError, match="give --num_components"):
        TrainConfig().resolve("my_data")
    # Not asked when N is given, when the agent does not use it, or under the paper preset.
    assert TrainConfig(num_components=3).resolve("my_data").num_components == 3
    assert TrainConfig(agent="BC").resolve("my_data").agent == "BC"
    assert TrainConfig(preset="paper").resolve("my_data").num_components == PAPER_DEFAULT.num_components


def test_every_flag_overrides_the_preset():
    cfg = TrainConfig(preset="paper", critic="expectile", weight_baseline="value", beta=1.0, num_components=3,
                      min_component_weight=0.1, reward_scaling="return_range").resolve("hopper-medium-v2")
    assert (cfg.critic, cfg.weight_baseline, cfg.beta, cfg.num_components, cfg.min_component_weight) == (
        "expectile", "value", 1.0, 3, 0.1)
    assert cfg.num_critics == PAPER_HYPERPARAMS["hopper-medium-v2"].num_critics
    assert cfg.scales_rewards("hopper-medium-v2", "Hopper-v4")


def test_the_builtin_benchmark_keeps_its_own_row_under_both_presets():
    row = PAPER_HYPERPARAMS["multimodal-fork-v0"]
    assert TrainConfig().resolve("multimodal-fork-v0").lom == row
    assert TrainConfig(preset="paper").resolve("multimodal-fork-v0").lom == dataclasses.replace(
        row, min_component_weight=0.0)
    assert not TrainConfig().scales_rewards("multimodal-fork-v0", "lom/MultimodalFork-v0")


def test_baselines_ignore_the_preset_and_scale_as_their_papers_do():
    for preset in ("lom", "paper"):
        assert TrainConfig(agent="IQL", preset=preset).scales_rewards("my_data", "Walker2d-v4")
        assert not TrainConfig(agent="TD3BC", preset=preset).scales_rewards("my_data", "Walker2d-v4")
        assert TrainConfig(agent="IQL", preset=preset).agent_folder == "IQL"
    assert preset_for("paper", "hopper-medium-v2").values == dataclasses.replace(
        PAPER_HYPERPARAMS["hopper-medium-v2"], min_component_weight=0.0)


def test_an_unknown_preset_is_refused_in_one_line(env, tmp_path):  # noqa: F811
    with pytest.raises(LOMError, match="--preset 'authors' is unknown: choose one of lom, paper"):
        TrainConfig(preset="authors").resolve("multimodal-fork-v0")
    out = train(["--preset", "authors", "--log_path", str(tmp_path)], env)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "--preset 'authors'" in out.stderr
