"""`python -m lom.report LOG_PATH [--final_window K]`: print the results table (IQM with its 95 % CI per dataset and
over all datasets) and write results.md (that table and per-column statistics), results.csv, learning_curves.png,
aggregate_iqm.png and performance_profile.png to LOG_PATH/report/.

`python -m lom.report --modes RUN_DIR`: draw which mixture component one LOM run imitates, to RUN_DIR/modes.png.

`python -m lom.report LOG_PATH --status`: list every run of a sweep as done / running / interrupted / failed / not
started, with its last step and score.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lom.cli import OneLineParser
from lom.errors import EXIT_OK, LOMError, cli_status, writing
from lom.io import atomic_path
from lom.report.aggregate import plot_aggregate_iqm, plot_performance_profile
from lom.report.crossings import crossings_section
from lom.report.curves import plot_learning_curves
from lom.report.runs import RunRecord, column_labels, find_runs
from lom.report.status import format_status, sweep_status
from lom.report.table import attach_paper_scores, build_table, format_csv, format_main_table, format_markdown
from lom.run_folder import RESULTS

REPORT_DIR = "report"
FIGURES = ("learning_curves.png", "aggregate_iqm.png", "performance_profile.png")


@dataclass(frozen=True)
class ReportConfig:
    log_path: Path
    include_incomplete: bool = False
    paper_scores: Path | None = None
    final_window: int = 1


@dataclass(frozen=True)
class ModesConfig:
    run_dir: Path


@dataclass(frozen=True)
class StatusConfig:
    log_path: Path


def parse_args(argv: list[str] | None = None) -> ReportConfig | ModesConfig | StatusConfig:
    parser = OneLineParser(
        prog="python -m lom.report",
        description="Summarise the runs under LOG_PATH: per dataset, over all datasets and per agent the IQM, "
        "mean and median of the runs' final normalised scores with stratified-bootstrap 95 % CIs, std and n; "
        "learning curves, the aggregate IQM and the performance profile, written to LOG_PATH/report/. "
        "With --modes RUN_DIR instead: "
        "plot one LOM run's mixture components and which one it imitates, written to RUN_DIR/modes.png.",
    )
    parser.add_argument("log_path", type=Path, nargs="?", help="the --log_path folder the runs were written to")
    parser.add_argument(
        "--modes",
        type=Path,
        metavar="RUN_DIR",
        help="instead of a report: draw the mixture components of this LOM run folder and which one it selects",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="instead of a report: list every run of the sweep in LOG_PATH as done, running, interrupted, failed "
        "or not started, with its last evaluated step and score",
    )
    parser.add_argument(
        "--include_incomplete",
        action="store_true",
        help=f"also count runs without {RESULTS}, scored by their latest evaluation",
    )
    parser.add_argument(
        "--paper_scores", type=Path, help="CSV with columns dataset,agent,score: published numbers shown beside ours"
    )
    parser.add_argument(
        "--final_window",
        type=int,
        metavar="K",
        help="score each run by the mean of its last K evaluations (default 1: its final evaluation)",
    )
    args = parser.parse_args(argv)
    report_flags = args.include_incomplete or args.paper_scores is not None or args.final_window is not None
    if args.modes is not None:
        if args.log_path is not None or report_flags or args.status:
            parser.error("--modes RUN_DIR takes no LOG_PATH, --status, --include_incomplete, --paper_scores or "
                         "--final_window")
        return ModesConfig(args.modes)
    if args.log_path is None:
        parser.error("the following arguments are required: log_path (or --modes RUN_DIR)")
    if args.status:
        if report_flags:
            parser.error("--status takes no --include_incomplete, --paper_scores or --final_window")
        return StatusConfig(args.log_path)
    if args.final_window is not None and args.final_window < 1:
        parser.error(f"--final_window must be 1 or more evaluations, got {args.final_window}")
    return ReportConfig(args.log_path, args.include_incomplete, args.paper_scores, args.final_window or 1)


def write_report(config: ReportConfig) -> tuple[str, list[str]]:
    """Write the report files; return the main Markdown table and the names of the files written."""
    runs = find_runs(config.log_path)
    used = select_runs(runs, config.include_incomplete)
    if not used:
        raise LOMError(
            f"no finished runs under {config.log_path} — wait for them to finish or pass --include_incomplete"
        )
    labels = column_labels(used)
    warn_short_windows(used, config.final_window)
    scores: dict[tuple[str, str], list[float]] = {}
    curves: dict[tuple[str, str], list] = {}
    for run, label in zip(used, labels):
        scores.setdefault((run.dataset, label), []).append(run.window_score(config.final_window))
        curves.setdefault((run.dataset, label), []).append((run.steps, run.scores))
    table = build_table(scores, config.final_window)
    if config.paper_scores is not None:
        unmatched = attach_paper_scores(table, config.paper_scores)
        if unmatched:
            warn(f"{len(unmatched)} --paper_scores entries match no dataset/agent we ran: {', '.join(unmatched)}")
    out_dir = config.log_path / REPORT_DIR
    with writing(f"the report into {out_dir}", f"make {config.log_path} writable, or copy the run folders into a "
                 "folder you can write to and report that one"):
        return write_files(table, curves, out_dir)


def write_files(table, curves: dict, out_dir: Path) -> tuple[str, list[str]]:
    with atomic_path(out_dir / "results.md") as tmp:
        crossings = crossings_section(curves)
        tmp.write_text(format_markdown(table) + ("\n" + crossings if crossings else ""))
    with atomic_path(out_dir / "results.csv") as tmp:
        tmp.write_text(format_csv(table))
    plot_learning_curves(curves, out_dir / FIGURES[0])
    if table.study_columns:
        plot_aggregate_iqm(table, out_dir / FIGURES[1])
        plot_performance_profile(table, out_dir / FIGURES[2])
        figures = list(FIGURES)
    else:
        warn(f"no column has runs on all {len(table.datasets)} datasets: no {FIGURES[1]} or {FIGURES[2]}")
        for stale in FIGURES[1:]:
            (out_dir / stale).unlink(missing_ok=True)
        figures = [FIGURES[0]]
    return format_main_table(table), ["results.md (with the statistics per column)", "results.csv", *figures]


def warn_short_windows(runs: list[RunRecord], final_window: int) -> None:
    """Name the runs with fewer than `final_window` evaluations: they are scored by the ones they have."""
    short = [r for r in runs if len(r.scores) < final_window]
    if final_window > 1 and short:
        warn(f"{len(short)} run(s) have fewer than --final_window {final_window} evaluations and are scored by "
             "the mean of those they have:")
        for run in short:
            warn(f"  {run.run_dir} ({len(run.scores)} evaluation(s))")


def select_runs(runs: list[RunRecord], include_incomplete: bool) -> list[RunRecord]:
    """Finished runs, plus (when asked) incomplete ones that have at least one evaluation; warns about the rest."""
    incomplete = [r for r in runs if not r.complete]
    if incomplete and not include_incomplete:
        warn(
            f"{len(incomplete)} incomplete run(s) (no {RESULTS}) left out; "
            f"pass --include_incomplete to score them by their latest evaluation:"
        )
    elif incomplete:
        warn(f"{len(incomplete)} incomplete run(s) scored by their latest evaluation:")
    for run in incomplete:
        left_out = include_incomplete and run.last_score is None
        warn(f"  {run.run_dir}" + (" (no evaluation yet, left out)" if left_out else ""))
    if include_incomplete:
        return [r for r in runs if r.last_score is not None]
    return [r for r in runs if r.complete]


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`python -m lom.report ...`: the exit status; a user error is one line on stderr."""
    return cli_status(report, argv)


def report(argv: list[str] | None) -> int:
    config = parse_args(argv)
    if isinstance(config, ModesConfig):
        return draw_modes(config.run_dir)
    if isinstance(config, StatusConfig):
        return print_status(config.log_path)
    markdown, written = write_report(config)
    print(markdown)
    print(f"wrote {config.log_path / REPORT_DIR}/" + ", ".join(written))
    return EXIT_OK


def print_status(log_path: Path) -> int:
    if not log_path.is_dir():
        raise LOMError(f"{log_path} is not a directory — pass the LOG_PATH of the sweep")
    statuses = sweep_status(log_path)
    if not statuses:
        raise LOMError(f"no runs planned or started under {log_path} — start a sweep with run_baselines.sh")
    print(format_status(statuses, log_path))
    return EXIT_OK


def draw_modes(run_dir: Path) -> int:
    from lom.report.modes import write_modes_figure  # torch and the agents load only when a figure is asked for

    with writing(f"the figure into {run_dir}", f"make {run_dir} writable, or copy the run folder into a folder "
                 "you can write to"):
        out = write_modes_figure(run_dir)
    print(f"wrote {out}")
    return EXIT_OK
