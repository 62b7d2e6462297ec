"""Each baseline's hyper-parameters are flags of its own: `--agent IQL --help` lists IQL's, a value given reaches the
agent, config.json records it, and the run's checkpoint reloads with it."""

from __future__ import annotations

import json
import subprocess
import sys

from test_train import REPO, TINY, env, run_dir_of, train  # noqa: F401  (env is a fixture)


def help_text(*args: str) -> str:
    out = subprocess.run([sys.executable, "train.py", *args, "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_of_an_agent_lists_its_own_hyper_parameters_and_not_the_others():
    iql = help_text("--agent", "IQL")
    for flag in ("--iql_beta", "--iql_expectile", "--iql_weight_clip", "--iql_num_critics", "--iql_lr"):
        assert flag in iql
    assert "--td3bc_alpha" not in iql and "--num_components" not in iql  # TD3+BC's and LOM's are not IQL's
    assert "--env_name" in iql and "--training_steps" in iql  # the flags every agent shares
    td3bc = help_text("--agent", "TD3BC")
    assert "--td3bc_alpha" in td3bc and "--td3bc_policy_delay" in td3bc and "--iql_beta" not in td3bc
    lom = help_text()
    assert "--num_components" in lom and "--weight_rule" in lom


def test_a_baseline_flag_reaches_the_agent_and_config_json(env, tmp_path):
    args = [*TINY, "--agent", "IQL", "--iql_beta", "5", "--iql_num_critics", "3", "--log_path", str(tmp_path / "runs")]
    done = train(args, env)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(args, env)
    record = json.loads((run_dir / "config.json").read_text())
    assert record["agent_hp"] == {"beta": 5.0, "num_critics": 3}
    assert record["hyperparameters"]["beta"] == 5.0 and record["hyperparameters"]["num_critics"] == 3
    assert record["hyperparameters"]["expectile"] == 0.7  # what was not given keeps IQL's default
    # lom.evaluate rebuilds the agent from config.json: three critics, or the checkpoint would not load.
    evaluated = subprocess.run([sys.executable, "-m", "lom.evaluate", str(run_dir), "--episodes", "1"], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr

