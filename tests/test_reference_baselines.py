"""benchmarks/reference_baselines.py's decisions that need no d3rlpy: what it hands d3rlpy equals what lom trains on
(transitions, state statistics, reward treatment, settings), which of the study's runs it reuses, the diagnostics of
IQL's weights, and the side-by-side table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lom.agents.configs import IQLConfig, TD3BCConfig
from lom.config import RETURN_RANGE_TARGET, TrainConfig
from lom.data import load_transitions, resolve_dataset
from lom.data.batches import ObservationNormalizer
from lom.data.transitions import return_range_scale

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_baselines.py"
spec = importlib.util.spec_from_file_location("reference_baselines", SCRIPT)
rb = importlib.util.module_from_spec(spec)
sys.modules["reference_baselines"] = rb
spec.loader.exec_module(rb)

# Episode lengths and how each ends: a fall (terminal), a time-out, an unflagged cut (the next row's state is not
# this row's next state), and a last episode the file cuts without a flag.
EPISODES = [(5, "terminal"), (4, "timeout"), (3, "cut"), (3, "end")]


def tiny_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    obs, next_obs, terminals, timeouts = [], [], [], []
    for length, how in EPISODES:
        states = rng.normal(3.0, 2.0, (length + 1, 3)).astype(np.float32)
        obs.append(states[:-1])
        next_obs.append(states[1:])
        terminals += [False] * (length - 1) + [how == "terminal"]
        timeouts += [False] * (length - 1) + [how == "timeout"]
    n = sum(length for length, _ in EPISODES)
    with h5py.File(path, "w") as f:
        f["observations"] = np.concatenate(obs)
        f["next_observations"] = np.concatenate(next_obs)
        f["actions"] = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        f["rewards"] = np.arange(1, n + 1, dtype=np.float32)  # row i earns i + 1
        f["terminals"] = np.array(terminals)
        f["timeouts"] = np.array(timeouts)
        f["metadata/ref_min_score"] = 0.0
        f["metadata/ref_max_score"] = 100.0
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return tiny_file(tmp_path / "tiny.hdf5")


def lom_side(path: Path):
    data_spec = resolve_dataset("Hopper-v4", str(path))
    return data_spec, load_transitions(data_spec, progress=False)


def test_d3rlpy_gets_lom_transitions_states_and_iql_reward_scale(tiny):
    inputs, _, _ = rb.prepare_inputs("Hopper-v4", str(tiny), "IQL")
    _, transitions = lom_side(tiny)
    normalizer = ObservationNormalizer.fit(transitions.observations, True)
    np.testing.assert_array_equal(inputs.obs_mean, normalizer.mean.numpy())
    np.testing.assert_array_equal(inputs.obs_std, normalizer.std.numpy())

    # IQL's scale, as lom computes it, and by hand: lom keeps rows 1-5 (fall), 6-8 (the time-out row 9 dropped),
    # 10-11 (the cut row 12 dropped) and 13-14 (the unflagged last row 15 dropped), so its episode returns are
    # 15, 21, 21 and 27.
    assert inputs.reward_scale == pytest.approx(return_range_scale(transitions, RETURN_RANGE_TARGET))
    assert inputs.reward_scale == pytest.approx(1000.0 / (27 - 15))
    assert TrainConfig(agent="IQL").scales_rewards("tiny", "Hopper-v4")

    # d3rlpy's rule (an episode per flag, every row but a non-terminated episode's last) keeps lom's rows exactly.
    kept = rb.d3rlpy_kept_rows(inputs.terminals, inputs.timeouts)
    assert len(kept) == inputs.transitions == len(transitions) == 12
    standardised = normalizer(torch.as_tensor(transitions.observations)).numpy()
    np.testing.assert_allclose(inputs.observations[kept], standardised, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inputs.rewards[kept], transitions.rewards * np.float32(inputs.reward_scale), rtol=1e-6)
    np.testing.assert_array_equal(inputs.actions[kept], transitions.actions)
    np.testing.assert_array_equal(inputs.terminals[kept], transitions.terminals.astype(bool))
    moving = ~inputs.terminals[kept]  # d3rlpy's next state is the next row's, lom's the row's own next state
    next_standardised = normalizer(torch.as_tensor(transitions.next_observations)).numpy()
    np.testing.assert_allclose(inputs.observations[kept + 1][moving], next_standardised[moving], rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_array_equal(inputs.actions[kept + 1][moving], transitions.next_actions[moving])
    assert inputs.reward_sum == pytest.approx(float(inputs.rewards[kept].sum()))
    assert not (inputs.terminals & inputs.timeouts).any()  # d3rlpy refuses rows flagged both


def test_td3bc_rewards_are_unscaled(tiny):
    inputs, _, transitions = rb.prepare_inputs("Hopper-v4", str(tiny), "TD3BC")
    assert inputs.reward_scale == 1.0
    assert not TrainConfig(agent="TD3BC").scales_rewards("tiny", "Hopper-v4")
    kept = rb.d3rlpy_kept_rows(inputs.terminals, inputs.timeouts)
    np.testing.assert_array_equal(inputs.rewards[kept], transitions.rewards)


def test_reference_settings_are_lom_settings():
    iql, td3bc = IQLConfig(), TD3BCConfig()
    cfg = TrainConfig()
    s = rb.REFERENCE_SETTINGS["IQL"]
    assert (s["expectile"], s["weight_temp"], s["max_weight"], s["n_critics"]) == (
        iql.expectile, iql.beta, iql.weight_clip, iql.num_critics)
    assert (s["actor_learning_rate"], s["critic_learning_rate"], s["batch_size"]) == (iql.lr, iql.lr, iql.batch_size)
    assert (rb.IQL_BETA, rb.IQL_WEIGHT_CLIP) == (iql.beta, iql.weight_clip)
    s = rb.REFERENCE_SETTINGS["TD3BC"]
    assert (s["alpha"], s["target_smoothing_sigma"], s["target_smoothing_clip"], s["update_actor_interval"],
            s["n_critics"]) == (td3bc.alpha, td3bc.policy_noise, td3bc.noise_clip, td3bc.policy_delay,
                                td3bc.num_critics)
    assert (s["actor_learning_rate"], s["critic_learning_rate"], s["batch_size"]) == (td3bc.lr, td3bc.lr,
                                                                                      td3bc.batch_size)
    for s in rb.REFERENCE_SETTINGS.values():
        assert (s["gamma"], s["tau"]) == (0.99, cfg.tau)
    assert rb.HIDDEN == (256, 256)


def test_episode_metadata_and_weight_stats(tiny):
    _, transitions = lom_side(tiny)
    meta = rb.episode_metadata(transitions)
    np.testing.assert_array_equal(meta["episode_returns"], [15, 21, 21, 27])
    np.testing.assert_array_equal(meta["step_in_episode"], [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 0, 1])
    np.testing.assert_array_equal(meta["steps_to_fall"][:5], [4, 3, 2, 1, 0])  # only the first episode falls
    assert (meta["steps_to_fall"][5:] == -1).all()

    rows = 512
    info = {"diag_return_percentile": np.linspace(0, 1, rows), "diag_step": np.arange(rows) % 100,
            "diag_to_fall": np.full(rows, -1), "diag_return": np.linspace(0, 1, rows)}
    equal = rb.weight_stats(np.ones(rows), np.ones(rows), info)
    assert equal["ess_frac"] == pytest.approx(1.0) and equal["weight_mean"] == pytest.approx(1.0)
    for kind in ("top10", "bottom50", "start40"):
        assert equal[f"{kind}_mass"] == pytest.approx(equal[f"{kind}_rows"])
    q = np.zeros(rows)
    q[-1] = 10.0  # one row in the second batch of 256 reaches the clip, exp(30) > 100
    peaked = rb.weight_stats(q, np.zeros(rows), info)
    assert peaked["clip_frac"] == pytest.approx(1 / rows)
    second = (255 + 100) ** 2 / (255 + 100**2) / 256
    assert peaked["ess_frac"] == pytest.approx((1.0 + second) / 2)
    assert peaked["top10_mass"] > 100 / (511 + 100) > peaked["top10_rows"]


def write_run(folder: Path, scores: list[float], schedule: dict | None = None) -> None:
    folder.mkdir(parents=True)
    every = 5000
    lines = ["step,normalized_score"] + [f"{every * (i + 1)},{s}" for i, s in enumerate(scores)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    (folder / "config.json").write_text(json.dumps(schedule or rb.SCHEDULE))


def test_side_by_side_table_mean_and_sample_std(tmp_path):
    runs = tmp_path
    write_run(runs / "lom" / "walker" / "IQL" / "seed0", [10, 20, 30, 40, 50, 60])
    write_run(runs / "lom" / "walker" / "IQL" / "seed1", [30, 40, 50, 60, 70, 80])
    write_run(runs / "d3rlpy" / "walker" / "IQL" / "seed0", [1, 2, 3, 4, 5, 6])
    write_run(runs / "d3rlpy" / "walker" / "IQL" / "seed1", [1, 2, 3, 4, 5, 8])
    found = rb.collect_runs(tmp_path)
    table = {row["step"]: row for row in rb.side_by_side(found[("walker", "IQL")])}
    assert table["5000"]["lom"] == [10, 30] and table["5000"]["d3rlpy"] == [1, 1]
    assert table["final"]["lom"] == [60, 80] and table["final"]["d3rlpy"] == [6, 8]
    assert table["last 5"]["lom"] == [40, 60]  # mean of 20..60 and of 40..80
    assert rb.fmt([60, 80]) == "70.0 ± 14.1"  # ddof = 1: sqrt(200)
    assert rb.fmt([5.0]) == "5.0"
    text = rb.write_report(tmp_path)
    assert "| **final** | **70.0 ± 14.1** | **7.0 ± 1.4** | 60.0 / 80.0 | 6.0 / 8.0 |" in text
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert "walker,IQL,d3rlpy,1,30000,8.0" in (tmp_path / "report.csv").read_text()


def test_reuses_only_finished_study_runs_with_the_schedule(tmp_path):
    schedule = dict(rb.SCHEDULE)
    write_run(tmp_path / "data" / "IQL" / "seed0", [1.0] * 10)
    write_run(tmp_path / "data" / "IQL" / "seed1", [1.0] * 7)  # stopped at 35k
    write_run(tmp_path / "data" / "IQL" / "seed2", [1.0] * 10, {**schedule, "eval_episodes": 5})
    assert rb.study_run(tmp_path, "data", "IQL", 0, schedule) == tmp_path / "data" / "IQL" / "seed0"
    assert rb.study_run(tmp_path, "data", "IQL", 1, schedule) is None
    assert rb.study_run(tmp_path, "data", "IQL", 2, schedule) is None
    assert rb.study_run(tmp_path, "data", "IQL", 3, schedule) is None
    assert rb.eval_steps(schedule) == list(range(5000, 50001, 5000))


def test_d3rlpy_is_imported_only_inside_the_venv_side_functions():
    import ast

    tree = ast.parse(SCRIPT.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("d3rlpy" in ast.dump(n) for n in top)
    users = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
             and any(isinstance(n, ast.Import) and any(a.name == "d3rlpy" for a in n.names) for n in ast.walk(f))}
    assert users == {"d3rlpy_config", "train_d3rlpy"}
    package = Path(__file__).resolve().parents[1] / "lom"
    assert not [p for p in package.rglob("*.py") if "d3rlpy" in p.read_text()]
