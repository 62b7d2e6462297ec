"""`--preset lom|paper`: the authors' agent in one flag, and one default rule for LOM that no file name changes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from d4rl_server import serve_directory, write_tiny_d4rl_file
from test_collect import finished_run  # noqa: F401  (a fixture: a tiny real lom.collect collection)
from test_reward_scale import episodes_file
from test_train import env, run_dir_of, train  # noqa: F401  (env is a fixture)

from lom.config import (LOM_DEFAULT, PAPER_DEFAULT, D4RL_ENVS, PAPER_HYPERPARAMS, PAPER_KIND_ROWS, D4RL_KINDS,
                        TrainConfig, preset_for)
from lom.data import resolve_dataset
from lom.errors import LOMError
from lom.io import write_d4rl_hdf5

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


# -- the paper preset on data that records its kind (issue 32, item 3) ------------------------------------------
def test_a_collected_file_trains_under_the_paper_preset_with_its_kinds_row_whatever_its_name(
        finished_run, env, tmp_path):  # noqa: F811
    """lom.collect records metadata/env_id and metadata/kind: the paper preset takes that environment's row for that
    kind, and config.json names it; copied under other names (one of them a misleading D4RL name), the file trains
    with the same values."""
    def paper_config(path):
        return trained_config(["--env_name", "HalfCheetah-v4", "--dataset_path", str(path), "--preset", "paper",
                               "--log_path", str(tmp_path / "runs")], env)

    medium_expert = finished_run / "halfcheetah-v4_medium-expert.hdf5"
    config = paper_config(medium_expert)
    assert config["preset_row"] == "halfcheetah-medium-expert-v2" and config["hyperparameters"]["beta"] == 0.1
    row = PAPER_HYPERPARAMS["halfcheetah-medium-expert-v2"]
    assert (config["num_critics"], config["num_components"], config["smooth_noise"]) == (
        row.num_critics, row.num_components, row.smooth_noise)
    replay = paper_config(finished_run / "halfcheetah-v4_medium-replay.hdf5")
    assert replay["preset_row"] == "halfcheetah-medium-replay-v2" and replay["hyperparameters"]["beta"] == 5.0
    for name in ("my_data.hdf5", "walker2d-medium-replay-v2.hdf5"):
        shutil.copy(medium_expert, tmp_path / name)
        copy = paper_config(tmp_path / name)
        assert copy["dataset"] != config["dataset"]
        assert copy["hyperparameters"] == config["hyperparameters"] and copy["preset_row"] == config["preset_row"]


def recorded_file(path, env_id=None, kind=None, obs_dim=11, act_dim=3):
    """A small D4RL-format file with the metadata keys lom.collect writes for its env and kind (test_collect.py
    checks that it writes them), or none."""
    arrays = episodes_file(path, obs_dim, act_dim)
    metadata = {key: value for key, value in (("env_id", env_id), ("kind", kind)) if value is not None}
    metadata.update(ref_min_score=0.0, ref_max_score=100.0)
    write_d4rl_hdf5(path, arrays, metadata)
    return path


@pytest.mark.parametrize("env_id, kind, family", [("Ant-v4", "medium-expert", "ant"),
                                                  ("Hopper-v4", "full-replay", "hopper"),
                                                  (None, None, None)])
def test_the_data_layer_reads_a_files_recorded_kind_and_never_its_name(env_id, kind, family, tmp_path):
    path = recorded_file(tmp_path / "hopper-medium-v2.hdf5", env_id, kind)  # a name that looks like a D4RL row
    spec = resolve_dataset("Hopper-v4", dataset_path=str(path))
    assert (spec.env_family, spec.kind, spec.standard_name) == (family, kind, None)
    assert spec.table_name == "Hopper-v4" and spec.name == "hopper-medium-v2"
    # Given a D4RL name, the file is that dataset: its standard name, env and kind come from the name.
    named = resolve_dataset("walker2d-expert-v2", dataset_path=str(path))
    assert (named.standard_name, named.env_family, named.kind) == ("walker2d-expert-v2", "walker2d", "expert")


@pytest.mark.parametrize("env_family, kind, row, beta", [
    ("hopper", "medium-expert", "hopper-medium-expert-v2", 0.1),
    ("walker2d", "medium-replay", "walker2d-medium-replay-v2", 5.0),
    ("halfcheetah", "random", "halfcheetah-random-v2", 5.0),
    ("ant", "medium-expert", "medium-expert (kind rule)", 0.1),
    ("ant", "full-replay", "full-replay (kind rule)", 5.0),
    ("ant", "simple", "PAPER_DEFAULT", 5.0),  # a kind the paper has no row for
    (None, None, "PAPER_DEFAULT", 5.0),  # a file that records nothing
])
def test_the_paper_preset_takes_the_row_of_the_recorded_kind_and_ours_ignores_it(env_family, kind, row, beta):
    paper = preset_for("paper", "Ant-v4", 8, env_family, kind)
    assert (paper.row, paper.values.beta, paper.values.min_component_weight) == (row, beta, 0.0)
    expected = PAPER_HYPERPARAMS.get(row) or PAPER_KIND_ROWS.get(kind) or PAPER_DEFAULT
    assert paper.values == dataclasses.replace(expected, min_component_weight=0.0)
    assert TrainConfig(preset="paper").resolve("Ant-v4", 8, env_family, kind).lom == paper.values
    # Ours is one rule for all data without a standard name: the recorded kind changes none of its values.
    ours = TrainConfig().resolve("Ant-v4", 8, env_family, kind)
    assert ours.lom == LOM_DEFAULT and preset_for("lom", "Ant-v4", 8, env_family, kind).row.startswith("LOM_DEFAULT")
    # A standard name wins over what the data records.
    assert preset_for("paper", "hopper-medium-v2", 3, env_family, kind).row == "hopper-medium-v2"


def test_a_kinds_values_are_each_the_most_common_across_the_three_environments_ties_to_the_smaller():
    """K and N differ across a kind's rows; β agrees; C and the noises take the value most rows use."""
    values = lambda hp: (hp.num_critics, hp.num_components, hp.beta, hp.ac_rand, hp.smooth_noise,  # noqa: E731
                         hp.weight_clip)
    assert values(PAPER_KIND_ROWS["medium-expert"]) == (2, 1, 0.1, 0.0, 0.0, 50)  # K 2/6/3, N 1/2/5: all ties
    assert values(PAPER_KIND_ROWS["medium-replay"]) == (1, 5, 5, 0.0, 0.2, 50)  # N 5/5/10, C 100/50/50
    assert values(PAPER_KIND_ROWS["full-replay"]) == (1, 10, 5, 0.0, 0.2, 50)  # K 1/2/1
    assert values(PAPER_KIND_ROWS["medium"]) == values(PAPER_KIND_ROWS["random"]) == (1, 2, 5, 0.0, 0.2, 50)
    assert values(PAPER_KIND_ROWS["expert"]) == (1, 2, 0.1, 0.0, 0.0, 50)  # smooth 0/0.2/0, ac_rand 0/0/0.2
    for kind in D4RL_KINDS:
        assert len({PAPER_HYPERPARAMS[f"{env}-{kind}-v2"].beta for env in D4RL_ENVS}) == 1, kind
