"""The Fetch mode plots: the dataset figure (`python -m lom.fetch.plot NAME`) and the strategies of trained agents
(`python -m lom.fetch.plot --agents PATH ...`), on the small datasets of tests/test_fetch.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_fetch import small_cache  # noqa: F401  (the fixture: small datasets in a temporary cache)

from lom.errors import LOMError
from lom.fetch import behaviour, dataset as fetch_dataset, plot as fetch_plot, strategies, world

REPO = Path(__file__).resolve().parents[1]
NAMES = fetch_dataset.DATASET_NAMES


def assert_drawn(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 400
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # something was drawn, not a blank canvas


@pytest.mark.parametrize("name", NAMES)
def test_the_dataset_figure_is_written(name, small_cache, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "figure.png"
    fetch_plot.main([name, "--out", str(out)])
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert_drawn(out)
    assert not list(tmp_path.glob(".figure.png.*"))  # the atomic write left no temporary file


def test_the_dataset_figure_shows_each_modes_share_and_return(small_cache):  # noqa: F811
    name = "fetch-push-multimodal-v0"
    fig = fetch_plot.dataset_figure(name, episodes_per_mode=3)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    for row in fetch_plot.mode_table(name):
        assert f"mode {row['mode']} → {row['name']}: {row['share']:.0%} of episodes" in labels[row["mode"]]
        assert f"mean return {row['mean_return']:.2f}" in labels[row["mode"]]
    zone_labels = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("zone")]
    assert zone_labels == ["zone 0 (right)\nworth 1", "zone 1 (left)\nworth 0.6",
                           "zone 2 (toward the robot)\nworth 0.3"]
    assert fetch_plot.default_dataset_figure(name) == Path("docs/fetch_push_dataset.png")


@pytest.mark.parametrize("name", NAMES)
def test_a_policy_that_goes_for_one_zone_is_classified_as_that_zone(name):
    task = world.TASKS[name]
    for mode in range(len(task.zones)):
        controller = behaviour.demonstrator(task, mode, np.random.default_rng(0), noise=0.0)
        found, returns = strategies.episode_strategies(task, controller, episodes=2, seed=7)
        assert list(found) == [mode, mode] and list(returns) == [task.worths[mode]] * 2
        assert list(strategies.shares(found, task)) == [float(k == mode) for k in range(len(task.zones))] + [0.0]
    still, returns = strategies.episode_strategies(task, lambda obs: np.zeros(4, np.float32), episodes=2)
    assert list(still) == [world.NO_ZONE] * 2 and list(returns) == [0.0, 0.0]
    assert list(strategies.shares(still, task)) == [0.0, 0.0, 0.0, 1.0]


def made_up_results() -> list[strategies.RunStrategies]:
    """BC with two seeds and LOM with one on Push; IQL on Reach."""
    push, reach = "fetch-push-multimodal-v0", "fetch-reach-multimodal-v0"
    return [
        strategies.RunStrategies(push, "BC", 1, None, np.array([2, 2, -1, 1]), np.array([0.3, 0.3, 0.0, 0.6])),
        strategies.RunStrategies(push, "LOM", 0, None, np.array([0, 0, 0, 1]), np.array([1.0, 1.0, 1.0, 0.6])),
        strategies.RunStrategies(push, "BC", 0, None, np.array([-1, -1, -1, 2]), np.array([0.0, 0.0, 0.0, 0.3])),
        strategies.RunStrategies(reach, "IQL", 0, None, np.array([1, 1]), np.array([0.6, 0.6])),
    ]


def test_the_table_gives_shares_per_agent_and_per_run():
    table = strategies.format_table(made_up_results())
    lines = table.splitlines()
    reach, push = lines.index(next(l for l in lines if l.startswith("fetch-reach"))), \
        lines.index(next(l for l in lines if l.startswith("fetch-push")))
    assert reach < push  # datasets in the Fetch order
    push_rows = [l.split() for l in lines[push + 2:]]
    assert push_rows[0][:7] == ["LOM", "4", "75%", "25%", "0%", "0%", "0.900"]  # agents in config's order
    assert push_rows[1][:7] == ["BC", "8", "0%", "12%", "38%", "50%", "0.188"]  # BC's two runs together
    assert push_rows[2][:3] == ["seed", "0", "4"] and push_rows[3][:3] == ["seed", "1", "4"]
    low, high = fetch_dataset.REFERENCES["fetch-push-multimodal-v0"]
    assert float(push_rows[0][7]) == pytest.approx(100 * (0.9 - low) / (high - low), abs=0.05)


def test_the_figure_stacks_each_agents_shares(tmp_path):
    fig = fetch_plot.shares_figure(made_up_results())
    reach_ax, push_ax = fig.axes[:2]
    assert reach_ax.get_title() == "fetch-reach-multimodal-v0" and push_ax.get_title() == "fetch-push-multimodal-v0"
    heights = np.array([bar.get_height() for bar in push_ax.patches]).reshape(4, 2)  # strategies x agents
    np.testing.assert_allclose(heights.T, [[0.75, 0.25, 0, 0], [0, 0.125, 0.375, 0.5]])
    np.testing.assert_allclose(heights.sum(axis=0), 1.0)
    fetch_plot.save(fig, tmp_path / "shares.png")
    assert_drawn(tmp_path / "shares.png")


def test_folders_without_runs_are_refused_in_one_line(tmp_path):
    with pytest.raises(LOMError, match="no run folders under"):
        strategies.run_folders([tmp_path])
    with pytest.raises(LOMError, match="is not a run folder"):
        strategies.run_folders([tmp_path / "nope"])
    run = tmp_path / "p" / "g" / "fetch-reach-multimodal-v0" / "BC" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(LOMError, match="holds no checkpoint.pt"):
        strategies.run_folders([tmp_path])


def test_a_trained_runs_episodes_are_classified_and_shares_printed(small_cache, tmp_path, monkeypatch):  # noqa: F811
    """A tiny BC run on Reach: `--agents` finds it in its log folder, evaluates it, prints a row whose shares sum
    to 1 and draws the figure; its returns are those `lom.evaluate` gets from the same episodes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(small_cache), "WANDB_MODE": "offline"}
    name = "fetch-reach-multimodal-v0"
    trained = subprocess.run([sys.executable, "train.py", "--env_name", name, "--agent", "BC", "--training_steps", "50",
                              "--eval_every", "50", "--eval_episodes", "1", "--log_path", str(tmp_path / "log")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "strategies.png"
    table = tmp_path / "study" / "strategies.md"
    drawn = subprocess.run([sys.executable, "-m", "lom.fetch.plot", "--agents", str(tmp_path / "log"), "--episodes",
                            "3", "--out", str(out), "--table", str(table)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr
    lines = drawn.stdout.strip().splitlines()
    assert lines[-2] == f"wrote {table}"
    written = table.read_text().splitlines()
    assert written[0] == "```text" and written[-1] == "```" and written[1:-1] == lines[:-2]  # the printed table
    del lines[-2]
    assert lines[0].startswith(f"{name}: the zone each evaluation episode went for")
    row = lines[2].split()
    assert row[:2] == ["BC", "3"]
    assert sum(float(share.rstrip("%")) for share in row[2:6]) == pytest.approx(100, abs=2)  # rounded to 1 %
    assert lines[-1] == f"wrote {out}"
    assert_drawn(out)

    import torch

    from lom.evaluate import load_run
    from lom.training.evaluation import evaluate

    run_dir = next((tmp_path / "log").rglob("config.json")).parent
    monkeypatch.setenv("LOM_CACHE_DIR", str(small_cache))
    [result] = strategies.evaluate_runs([run_dir], episodes=3)
    run = load_run(run_dir)
    expected = evaluate(run.agent.act_single, run.normalizer, run.spec, 3, 0, torch.device("cpu"))
    assert result.agent == "BC" and result.dataset == name and len(result.strategies) == 3
    assert strategies.shares(result.strategies, world.TASKS[name]).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(result.returns, expected.returns)
