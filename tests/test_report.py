"""`python -m lom.report` on hand-written run folders in train.py's format."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lom.errors import EXIT_USAGE
from lom.report.cli import main

ROOT = Path(__file__).resolve().parents[1]
METRICS_HEADER = "step,wall_time_s,return_mean,return_std,normalized_score,normalized_score_std,actor_loss"


def write_run(
    log_path: Path,
    dataset: str,
    agent: str,
    seed: int,
    curve: list[float],
    final: float | None = None,
    group: str = "default",
    eval_every: int = 100,
    project: str = "LOM",
    preset: str | None = None,
) -> Path:
    """A run folder as train.py writes it; `final=None` leaves it incomplete (no results.json); `preset=None` writes
    a config.json from before presets (no "preset" key), "paper" trains LOM in the LOM-paper folder."""
    folder = f"{agent}-paper" if agent == "LOM" and preset == "paper" else agent
    run_dir = log_path / project / group / dataset.lower() / folder / f"seed{seed}"
    run_dir.mkdir(parents=True)
    config = {"agent": agent, "dataset": dataset, "env_id": "X-v4", "seed": seed, "training_steps": 1000,
              "hyperparameters": {"batch_size": 256}}
    if preset is not None:
        config["preset"] = preset
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = [f"{(i + 1) * eval_every},{i}.5,{s * 10},1.0,{s},0.5,0.1" for i, s in enumerate(curve)]
    (run_dir / "metrics.csv").write_text("\n".join([METRICS_HEADER, *rows]) + "\n")
    if final is not None:
        results = {"final_normalized_score": final, "best_normalized_score": max(curve + [final]),
                   "final_return": final * 10, "steps": 1000, "wall_time_s": 3.0, "agent": agent,
                   "dataset": dataset, "seed": seed}
        (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 datasets × 2 agents × 3 seeds, all finished."""
    log = tmp_path / "runs"
    finals = {
        ("hopper-medium-v2", "LOM"): [60.0, 70.0, 80.0],
        ("hopper-medium-v2", "BC"): [50.0, 52.0, 54.0],
        ("halfcheetah-medium-replay-v2", "LOM"): [40.0, 42.0, 44.0],
        ("halfcheetah-medium-replay-v2", "BC"): [45.0, 46.0, 47.0],
    }
    for (dataset, agent), scores in finals.items():
        for seed, final in enumerate(scores):
            write_run(log, dataset, agent, seed, [final / 2, final], final)
    return log


def read_results_csv(log: Path) -> dict[tuple[str, str], dict[str, str]]:
    """results.csv's lines keyed by (dataset, agent)."""
    with open(log / "report" / "results.csv", newline="") as f:
        return {(row["dataset"], row["agent"]): row for row in csv.DictReader(f)}


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The first Markdown table in `markdown` (the main table), its rows keyed by their first cell."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = [line for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start:])]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_table_reports_iqm_with_its_interval_and_bolds_best(sweep: Path, capsys):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    # IQM of 3 runs is their mean; every bootstrap copy (a, a, a) has chance 1/27 > 2.5 %: the CI is [min, max]
    assert rows["hopper-medium-v2"]["LOM"] == "**70.0** [60.0, 80.0] (n=3)"
    assert rows["hopper-medium-v2"]["BC"] == "52.0 [50.0, 54.0] (n=3)"
    assert rows["halfcheetah-medium-replay-v2"]["BC"] == "**46.0** [45.0, 47.0] (n=3)"
    assert not rows["halfcheetah-medium-replay-v2"]["LOM"].startswith("**")
    # paper order: medium-replay before medium, then the aggregate; LOM column first
    assert list(rows) == ["halfcheetah-medium-replay-v2", "hopper-medium-v2", "all datasets"]
    assert next(line for line in out.splitlines() if line.startswith("|")).split("|")[2].strip() == "LOM"
    assert "IQM [95 % CI]" in out and "its last evaluation (`--final_window 1`)" in out
    markdown = (sweep / "report" / "results.md").read_text()
    assert markdown.startswith(out.split("\nwrote ")[0].strip())  # stdout: the main table; the file goes on
    assert "## Statistics per column" in markdown and "## Statistics" not in out


def test_csv_has_numbers_per_dataset_and_agent(sweep: Path):
    main([str(sweep)])
    with open(sweep / "report" / "results.csv", newline="") as f:
        assert next(csv.reader(f)) == [
            "dataset", "agent", "final_window", "n", "iqm", "iqm_ci_low", "iqm_ci_high", "mean", "mean_ci_low",
            "mean_ci_high", "median", "median_ci_low", "median_ci_high", "std"]
    rows = read_results_csv(sweep)
    lom = rows["hopper-medium-v2", "LOM"]
    assert float(lom["mean"]) == pytest.approx(70.0) and float(lom["iqm"]) == pytest.approx(70.0)
    assert (float(lom["iqm_ci_low"]), float(lom["iqm_ci_high"])) == (60.0, 80.0)
    assert float(lom["std"]) == pytest.approx(10.0)  # ddof = 1
    assert lom["n"] == "3" and lom["final_window"] == "1"
    assert float(rows["halfcheetah-medium-replay-v2", "BC"]["median"]) == pytest.approx(46.0)


def test_figures_are_written(sweep: Path):
    main([str(sweep)])
    for name in ("learning_curves.png", "aggregate_iqm.png", "performance_profile.png"):
        png = sweep / "report" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    assert not list((sweep / "report").glob(".*.tmp"))


def test_the_header_names_the_score_without_calling_every_dataset_d4rl(sweep: Path, capsys):
    write_run(sweep, "multimodal-fork-v0", "LOM", 0, [100.0])  # the built-in benchmark: references of its own
    assert main([str(sweep)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("Final normalised score of each run (0: its dataset's low reference return, 100: its "
                            "high one): ") and "D4RL" not in first
    assert (sweep / "report" / "results.md").read_text().splitlines()[0] == first


def test_incomplete_runs_are_excluded_with_a_warning(sweep: Path, capsys):
    unfinished = write_run(sweep, "hopper-medium-v2", "LOM", 7, [5.0, 6.0])
    assert main([str(sweep)]) == 0
    captured = capsys.readouterr()
    assert "incomplete" in captured.err and str(unfinished) in captured.err
    assert "--include_incomplete" in captured.err
    assert table_rows(captured.out)["hopper-medium-v2"]["LOM"].endswith("(n=3)")


def test_include_incomplete_uses_the_last_evaluation(sweep: Path, capsys):
    write_run(sweep, "hopper-medium-v2", "BC", 7, [5.0, 2.0])
    write_run(sweep, "hopper-medium-v2", "BC", 8, [])  # not evaluated yet: nothing to count
    assert main([str(sweep), "--include_incomplete"]) == 0
    captured = capsys.readouterr()
    assert "no evaluation yet" in captured.err
    bc = read_results_csv(sweep)["hopper-medium-v2", "BC"]
    assert bc["n"] == "4"
    assert float(bc["mean"]) == pytest.approx(np.mean([50, 52, 54, 2.0]))
    assert float(bc["iqm"]) == pytest.approx(np.mean([50, 52]))  # of 4 runs: the middle two


def test_paper_scores_are_shown_beside_ours(sweep: Path, tmp_path: Path, capsys):
    paper = tmp_path / "paper.csv"
    paper.write_text("dataset,agent,score\nHopper-Medium-v2,LOM,99.5\nhopper-medium-v2,CQL,58.0\n")
    assert main([str(sweep), "--paper_scores", str(paper)]) == 0
    captured = capsys.readouterr()
    rows = table_rows(captured.out)
    assert rows["hopper-medium-v2"]["LOM (published)"] == "99.5"
    assert rows["halfcheetah-medium-replay-v2"]["LOM (published)"] == "—"
    assert "CQL" in captured.err  # an agent we did not run is reported, not silently dropped
    csv_rows = read_results_csv(sweep)
    assert float(csv_rows["hopper-medium-v2", "LOM"]["published"]) == pytest.approx(99.5)
    assert csv_rows["hopper-medium-v2", "BC"]["published"] == ""


def test_bad_paper_scores_file_is_a_one_line_error(sweep: Path, tmp_path: Path, capsys):
    paper = tmp_path / "paper.csv"
    paper.write_text("dataset,agent,score\nhopper-medium-v2,LOM,high\n")
    assert main([str(sweep), "--paper_scores", str(paper)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error:") and "line 2" in err and len(err.strip().splitlines()) == 1


def test_runs_from_two_experiments_get_separate_columns(sweep: Path, capsys):
    write_run(sweep, "hopper-medium-v2", "LOM", 0, [1.0], 1.0, group="ablation")
    assert main([str(sweep)]) == 0
    row = table_rows(capsys.readouterr().out)["hopper-medium-v2"]
    assert row["LOM [ablation]"] == "1.0 [1.0, 1.0] (n=1)"
    assert row["LOM [default]"].endswith("(n=3)")
    assert row["BC"].endswith("(n=3)")  # one experiment only: no bracket

    write_run(sweep, "hopper-medium-v2", "LOM", 0, [1.0], 1.0, project="other", group="ablation")
    assert main([str(sweep)]) == 0
    assert "LOM [other/ablation]" in table_rows(capsys.readouterr().out)["hopper-medium-v2"]


def test_run_folders_moved_aside_by_train_py_are_ignored(sweep: Path, capsys):
    old = write_run(sweep, "hopper-medium-v2", "LOM", 0, [1.0], 1.0, group="tmp")
    old.rename(old.parents[3] / "default" / "hopper-medium-v2" / "LOM" / "seed0.old-20250101-120000")
    assert main([str(sweep)]) == 0
    assert table_rows(capsys.readouterr().out)["hopper-medium-v2"]["LOM"] == "**70.0** [60.0, 80.0] (n=3)"


def test_learning_curve_mean_uses_the_seeds_that_reached_each_step():
    from lom.report.curves import mean_std_curve

    steps, mean, std = mean_std_curve([(np.array([100, 200]), np.array([1.0, 3.0])), (np.array([100]), np.array([3.0]))])
    assert steps.tolist() == [100, 200]
    assert mean.tolist() == [2.0, 3.0] and std.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("datasets", [1, 4])
def test_the_legend_of_many_long_column_names_stays_inside_the_figure(datasets):
    import matplotlib.pyplot as plt

    from lom.report.curves import learning_curves_figure

    columns = ["LOM [authors-rule]", "LOM [beta5-unscaled]", "LOM [default]", "IQL", "BC", "TD3BC", "LOM [sarsa-K2]"]
    curve = (np.array([5_000, 10_000]), np.array([10.0, 20.0]))
    fig = learning_curves_figure({(f"dataset-{d}", c): [curve] for d in range(datasets) for c in columns})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    page = fig.bbox
    assert page.x0 <= legend.x0 and legend.x1 <= page.x1 and legend.y1 <= page.y1
    panels_top = max(ax.get_tightbbox(renderer).y1 for ax in fig.axes if ax.get_visible())
    assert legend.y0 >= panels_top  # above the panels, not over a title
    plt.close(fig)


def test_no_runs_is_a_one_line_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "lom.report", str(tmp_path / "empty")], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.startswith("error: no runs found") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "empty" / "report").exists()


def test_only_incomplete_runs_is_an_error_not_an_empty_table(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [5.0])
    assert main([str(tmp_path)]) == EXIT_USAGE
    assert "--include_incomplete" in capsys.readouterr().err


def test_copy_runs_keeps_each_runs_small_files_and_nothing_else(sweep: Path, tmp_path: Path, capsys):
    """What a study commits: config.json, metrics.csv and results.json of every run, at the same paths; not its
    checkpoints, logs, runs moved aside, or the frozen code checkout's own committed results."""
    from lom.report.copy_runs import main as copy_main

    finished = write_run(sweep, "walker2d-medium-v2", "IQL", 0, [10.0, 20.0], 20.0)
    (finished / "checkpoint.pt").write_bytes(b"weights")
    (sweep / "logs").mkdir()
    write_run(sweep / "logs", "hopper-medium-v2", "BC", 9, [1.0], 1.0)
    checkout = sweep / "code"
    write_run(checkout / "results", "hopper-medium-v2", "TD3BC", 0, [1.0], 1.0)
    (checkout / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    aside = write_run(sweep, "hopper-medium-v2", "TD3BC", 5, [1.0], 1.0)
    aside.rename(aside.with_name("seed5.old-1"))

    dest = tmp_path / "study"
    assert copy_main([str(sweep), str(dest)]) is None
    assert "copied the small files of 13 run(s)" in capsys.readouterr().out
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert len(copied) == 13 * 3 and all(p.rsplit("/", 1)[1] in ("config.json", "metrics.csv", "results.json")
                                           for p in copied)
    assert "LOM/default/walker2d-medium-v2/IQL/seed0/results.json" in copied
    assert not any("code" in p or "logs" in p or "old" in p for p in copied)
    assert (dest / "LOM/default/walker2d-medium-v2/IQL/seed0/metrics.csv").read_text() == \
        (finished / "metrics.csv").read_text()


def test_copy_runs_from_a_folder_that_is_not_there_is_one_line(tmp_path: Path, capsys):
    from lom.report.copy_runs import main as copy_main
    from lom.errors import cli_status

    assert cli_status(copy_main, [str(tmp_path / "nowhere"), str(tmp_path / "dest")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not a directory" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "dest").exists()


def steadiness_run(tmp_path: Path, scores: list[float], episode_std: float) -> Path:
    run_dir = tmp_path / "seed0"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"agent": "LOM", "dataset": "d", "seed": 0, "eval_episodes": 4}))
    rows = [f"{(i + 1) * 1000},0,0,0,{s},{episode_std}" for i, s in enumerate(scores)]
    (run_dir / "metrics.csv").write_text("\n".join([METRICS_HEADER.rsplit(",", 1)[0], *rows]) + "\n")
    return run_dir


def test_steadiness_tells_a_policy_that_moves_from_evaluation_noise(tmp_path: Path, capsys):
    """A policy that swings 40 points between evaluations shows a between-evaluation spread far above its
    evaluation noise (episode std 10 over √4 episodes = 5): differences ±40, std √(4·40²/3) / √2 = 32.7; in the second
    half it stands still at 30."""
    from lom.report.steadiness import main as steadiness

    run_dir = steadiness_run(tmp_path, [90, 50, 90, 50, 90, 30, 30, 30, 30, 30], episode_std=10.0)
    steadiness([str(run_dir), "--parts", "2"])
    first, second = capsys.readouterr().out.strip().splitlines()
    assert "steps   1,000–  5,000: mean   74.0  between evaluations  32.7  evaluation noise   5.0" in first
    assert "steps   6,000– 10,000: mean   30.0  between evaluations   0.0  evaluation noise   5.0" in second


@pytest.mark.parametrize("case, message", [
    ("no run", "config.json"),
    ("no evaluations", "has no evaluations yet"),
    ("other columns", "lacks step, normalized_score, normalized_score_std"),
    ("no parts", "--parts must be at least 1, got 0"),
])
def test_steadiness_refuses_what_it_cannot_read_in_one_line(case, message, tmp_path: Path, capsys):
    from lom.errors import cli_status
    from lom.report.steadiness import main as steadiness

    run_dir = tmp_path if case == "no run" else steadiness_run(tmp_path, [] if case == "no evaluations" else [1, 2],
                                                                episode_std=1.0)
    if case == "other columns":
        (run_dir / "metrics.csv").write_text("step,return_mean\n1000,3.0\n")
    assert cli_status(steadiness, [str(run_dir), *(["--parts", "0"] if case == "no parts" else [])]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
