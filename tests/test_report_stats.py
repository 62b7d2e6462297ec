"""lom.report's statistics on inputs whose answers are worked out by hand: IQM, rliable's aggregates, the
stratified-bootstrap interval, ddof = 1 std; and in `python -m lom.report`: --final_window, the "all datasets" row,
the "LOM [paper]" column and the two study figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_report import read_results_csv, table_rows, write_run

import lom.report.aggregate as aggregate
from lom.errors import EXIT_USAGE
from lom.report.cli import main
from lom.report.stats import (
    Estimate,
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    iqm,
    percentile_interval,
    performance_profile,
    stratified_resamples,
    summarise,
)
from lom.report.table import build_table


def test_iqm_of_one_to_eight_is_four_and_a_half():
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # cut 2 from each end: mean of 3, 4, 5, 6
    assert iqm(np.array([100.0, 1.0, 2.0, 3.0, 4.0])) == 3.0  # n = 5: int(5 / 4) = 1 cut, unsorted input
    assert iqm(np.array([1.0, 2.0, 100.0])) == pytest.approx(103 / 3)  # n = 3: nothing cut
    assert iqm(np.array([[1.0, 2.0, 3.0, 10.0], [4.0, 4.0, 0.0, 8.0]])).tolist() == [2.5, 4.0]  # per row


def test_aggregates_follow_rliable_pooled_iqm_and_per_dataset_means():
    strata = [np.array([0.0, 0.0, 30.0]), np.array([40.0]), np.array([100.0, 200.0])]  # dataset means 10, 40, 150
    assert aggregate_iqm(strata) == pytest.approx(42.5)  # pooled 0 0 30 40 100 200, cut 1: (0+30+40+100) / 4
    assert aggregate_mean(strata) == pytest.approx(200 / 3)  # (10 + 40 + 150) / 3, not the pooled 370 / 6
    assert aggregate_median(strata) == pytest.approx(40.0)
    assert aggregate_median([np.array([1.0, 2.0, 10.0])]) == 2.0  # one dataset: its runs' median


def test_std_is_ddof_one_and_pooled_within_datasets():
    assert summarise([[60.0, 70.0, 80.0]]).std == pytest.approx(10.0)  # sqrt(200 / 2); ddof = 0 would be 8.16
    assert summarise([[60.0, 70.0, 80.0], [1.0, 3.0]]).std == pytest.approx(math.sqrt((200 + 2) / (2 + 1)))
    assert math.isnan(summarise([[5.0]]).std) and math.isnan(summarise([[5.0], [7.0]]).std)


def test_runs_that_all_score_the_same_give_a_zero_width_interval():
    summary = summarise([[5.0, 5.0, 5.0], [7.0, 7.0]])
    assert summary.n == 5
    assert summary.iqm == Estimate(pytest.approx(17 / 3), pytest.approx(17 / 3), pytest.approx(17 / 3))
    assert summary.mean == Estimate(6.0, 6.0, 6.0) and summary.median == Estimate(6.0, 6.0, 6.0)
    assert summary.std == 0.0


def test_the_stratified_bootstrap_never_mixes_datasets():
    # one run per dataset: every resample is the data itself, so the interval has zero width; resampling the
    # pooled runs instead would draw (1, 1) and (100, 100) a quarter of the time each
    summary = summarise([[1.0], [100.0]])
    assert summary.iqm == Estimate(50.5, 50.5, 50.5) and summary.mean == Estimate(50.5, 50.5, 50.5)
    copies = stratified_resamples([np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])], 500, np.random.default_rng(1))
    assert copies[0].shape == (500, 3) and copies[1].shape == (500, 2)
    assert set(np.unique(copies[0])) == {1.0, 2.0, 3.0} and set(np.unique(copies[1])) == {10.0, 20.0}


def test_the_interval_is_the_central_95_percent_of_the_bootstrap_estimates():
    low, high = percentile_interval(np.arange(1001.0))
    assert (low, high) == (pytest.approx(25.0), pytest.approx(975.0))
    # two runs 0 and 1: a copy's mean is 0, 0.5 or 1 with chance 1/4, 1/2, 1/4, so the 2.5 % and 97.5 % points
    # are 0 and 1; three runs: a copy (a, a, a) has chance 1/27 > 2.5 %, so the interval is [min, max]
    assert summarise([[0.0, 1.0]]).mean == Estimate(0.5, 0.0, 1.0)
    assert summarise([[60.0, 70.0, 80.0]]).iqm == Estimate(70.0, 60.0, 80.0)
    # 20 runs 0..19: the resampled mean is near normal with sd sqrt(var / n) = 1.29, interval about ± 2.5
    wide = summarise([np.arange(20.0)]).mean
    half_width = 1.96 * np.std(np.arange(20.0)) / math.sqrt(20)
    assert wide.value == 9.5
    assert (wide.low, wide.high) == (pytest.approx(9.5 - half_width, abs=0.3), pytest.approx(9.5 + half_width, abs=0.3))


def test_the_bootstrap_is_reproducible_and_seeded():
    strata = [np.arange(10.0), np.array([3.0, 50.0, 7.0])]
    assert summarise(strata) == summarise(strata)
    assert summarise(strata, seed=1).mean != summarise(strata, seed=0).mean


def test_performance_profile_counts_runs_above_tau_with_its_band():
    taus = np.array([0.0, 15.0, 25.0, 35.0])
    fraction, low, high = performance_profile([np.array([10.0, 20.0]), np.array([30.0])], taus)
    assert fraction == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert np.all(low <= fraction) and np.all(fraction <= high)
    assert low[[0, 3]].tolist() == high[[0, 3]].tolist() == [1.0, 0.0]  # below and above every run: no spread
    assert low[1] == pytest.approx(1 / 3) and high[1] == pytest.approx(1.0)  # copies of 10, 20: 0, 1 or 2 above 15


def test_final_window_scores_each_run_by_its_last_k_evaluations(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [10.0, 20.0, 30.0, 40.0], 40.0)
    write_run(tmp_path, "hopper-medium-v2", "LOM", 1, [0.0, 60.0, 0.0, 60.0], 60.0)
    assert main([str(tmp_path), "--final_window", "3"]) == 0
    out = capsys.readouterr().out
    assert "the mean of its last 3 evaluations (`--final_window 3`)" in out
    row = read_results_csv(tmp_path)["hopper-medium-v2", "LOM"]
    assert row["final_window"] == "3"
    assert float(row["mean"]) == pytest.approx(np.mean([30.0, 40.0]))  # (20+30+40)/3 and (60+0+60)/3
    assert (float(row["iqm_ci_low"]), float(row["iqm_ci_high"])) == (30.0, 40.0)
    assert "the mean of its last 3 evaluations" in (tmp_path / "report" / "results.md").read_text()

    assert main([str(tmp_path)]) == 0  # default: the final evaluation, from results.json
    assert float(read_results_csv(tmp_path)["hopper-medium-v2", "LOM"]["mean"]) == pytest.approx(50.0)


def test_final_window_longer_than_a_run_warns_and_uses_what_it_has(tmp_path: Path, capsys):
    short = write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [10.0, 20.0], 20.0)
    assert main([str(tmp_path), "--final_window", "5"]) == 0
    err = capsys.readouterr().err
    assert "fewer than --final_window 5" in err and f"{short} (2 evaluation(s))" in err
    assert float(read_results_csv(tmp_path)["hopper-medium-v2", "LOM"]["mean"]) == pytest.approx(15.0)


@pytest.mark.parametrize("flags", [["--final_window", "0"], ["--status", "--final_window", "2"]])
def test_a_bad_final_window_is_a_one_line_error(tmp_path: Path, capsys, flags):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--final_window" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """2 datasets × LOM and BC × 3 seeds, and one column (IQL) with runs on one dataset only."""
    finals = {
        ("hopper-medium-v2", "LOM"): [60.0, 70.0, 80.0],
        ("hopper-medium-v2", "BC"): [50.0, 52.0, 54.0],
        ("halfcheetah-medium-replay-v2", "LOM"): [40.0, 42.0, 44.0],
        ("halfcheetah-medium-replay-v2", "BC"): [45.0, 46.0, 47.0],
        ("hopper-medium-v2", "IQL"): [1.0],
    }
    for (dataset, agent), scores in finals.items():
        for seed, final in enumerate(scores):
            write_run(tmp_path, dataset, agent, seed, [final], final)
    return tmp_path


def test_the_all_datasets_row_pools_the_runs_of_every_dataset(study: Path, capsys):
    assert main([str(study)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert list(rows)[-1] == "all datasets"
    # LOM pooled 40 42 44 60 70 80, cut 1 from each end: IQM (42+44+60+70)/4 = 54; BC: (46+47+50+52)/4 = 48.75
    assert rows["all datasets"]["LOM"].startswith("**54.0** [") and rows["all datasets"]["LOM"].endswith("(n=6)")
    assert rows["all datasets"]["BC"].startswith("48.8 [")
    assert rows["all datasets"]["IQL"] == "—"  # no runs on halfcheetah: no aggregate
    csv_rows = read_results_csv(study)
    lom = csv_rows["all datasets", "LOM"]
    assert (float(lom["iqm"]), float(lom["mean"]), float(lom["median"]), lom["n"]) == (54.0, 56.0, 56.0, "6")
    assert float(lom["iqm_ci_low"]) < 54.0 < float(lom["iqm_ci_high"])
    assert float(lom["std"]) == pytest.approx(math.sqrt((200 + 8) / 4))  # pooled within-dataset, ddof = 1
    assert ("all datasets", "IQL") not in csv_rows


def test_results_md_has_a_statistics_table_per_column(study: Path):
    main([str(study)])
    markdown = (study / "report" / "results.md").read_text()
    section = markdown.split("### LOM\n")[1].split("###")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["dataset", "IQM", "95 % CI", "mean", "95 % CI", "median", "95 % CI", "std", "n"]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert list(rows) == ["halfcheetah-medium-replay-v2", "hopper-medium-v2", "all datasets"]
    interval = "[60.0, 80.0]"
    assert rows["hopper-medium-v2"][1:] == ["70.0", interval, "70.0", interval, "70.0", interval, "10.0", "3"]
    assert rows["all datasets"][:2] == ["all datasets", "54.0"]
    iql = markdown.split("### IQL\n")[1].split("###")[0]
    assert "| hopper-medium-v2 | 1.0 | [1.0, 1.0] | 1.0 | [1.0, 1.0] | 1.0 | [1.0, 1.0] | — | 1 |" in iql


def test_one_dataset_has_no_aggregate_row(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [5.0], 5.0)
    assert main([str(tmp_path)]) == 0
    assert list(table_rows(capsys.readouterr().out)) == ["hopper-medium-v2"]
    assert (tmp_path / "report" / "aggregate_iqm.png").is_file()  # the figures show the only dataset


def test_no_column_on_every_dataset_warns_and_draws_no_study_figures(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [5.0], 5.0)
    write_run(tmp_path, "walker2d-medium-v2", "BC", 0, [5.0], 5.0)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "aggregate_iqm.png").write_bytes(b"from an earlier report")
    assert main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "no column has runs on all 2 datasets" in captured.err
    assert captured.out.splitlines()[-1].endswith("results.csv, learning_curves.png")
    assert not (tmp_path / "report" / "aggregate_iqm.png").exists()  # a stale figure is not left to mislead
    assert (tmp_path / "report" / "learning_curves.png").is_file()


def test_paper_preset_runs_get_their_own_column(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [80.0], 80.0)  # config.json from before presets
    write_run(tmp_path, "hopper-medium-v2", "LOM", 1, [90.0], 90.0, preset="lom")
    paper = write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [30.0], 30.0, preset="paper")
    write_run(tmp_path, "hopper-medium-v2", "BC", 0, [50.0], 50.0, preset="paper")  # presets are LOM's only
    assert paper.parent.name == "LOM-paper" and json.loads((paper / "config.json").read_text())["preset"] == "paper"
    assert main([str(tmp_path)]) == 0
    row = table_rows(capsys.readouterr().out)["hopper-medium-v2"]
    assert list(row) == ["dataset", "LOM", "LOM [paper]", "BC"]
    assert row["LOM"] == "**85.0** [80.0, 90.0] (n=2)" and row["LOM [paper]"] == "30.0 [30.0, 30.0] (n=1)"
    assert read_results_csv(tmp_path)["hopper-medium-v2", "LOM [paper]"]["n"] == "1"


def test_paper_preset_runs_of_two_experiments_name_both(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [80.0], 80.0)
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [30.0], 30.0, preset="paper")
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [20.0], 20.0, preset="paper", group="n5")
    assert main([str(tmp_path)]) == 0
    row = table_rows(capsys.readouterr().out)["hopper-medium-v2"]
    assert list(row) == ["dataset", "LOM", "LOM [paper, default]", "LOM [paper, n5]"]


def test_an_experiment_named_like_the_preset_is_refused_not_mixed(tmp_path: Path, capsys):
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [80.0], 80.0)
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [70.0], 70.0, group="paper")  # LOM's defaults, group "paper"
    write_run(tmp_path, "hopper-medium-v2", "LOM", 0, [30.0], 30.0, preset="paper")
    assert main([str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: column 'LOM [paper]' would mix") and "rename" in err
    assert len(err.strip().splitlines()) == 1


def test_aggregate_figure_draws_a_zero_width_interval_inside_the_frame(tmp_path: Path, monkeypatch):
    table = build_table({("a", "LOM"): [30.0, 40.0], ("b", "LOM"): [35.0, 45.0],
                         ("a", "LOM [paper]"): [14.0], ("b", "LOM [paper]"): [14.0]})
    drawn = {}

    def keep_limits(fig, path):
        drawn["xlim"] = fig.axes[0].get_xlim()
        aggregate.plt.close(fig)

    monkeypatch.setattr(aggregate, "_save", keep_limits)
    aggregate.plot_aggregate_iqm(table, tmp_path / "aggregate_iqm.png")
    low, high = drawn["xlim"]
    assert low < 14.0 - 1.0 and high > 45.0  # one run per dataset: its bar has no width, yet stays off the frame
