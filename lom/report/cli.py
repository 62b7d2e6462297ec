"""`python -m lom.report LOG_PATH`: print the results table and write results.md, results.csv and learning_curves.png.

`python -m lom.report --modes RUN_DIR`: draw which mixture component one LOM run imitates, to RUN_DIR/modes.png.

`python -m lom.report LOG_PATH --status`: list every run of a sweep as done / running / interrupted / failed / not
started, with its last step and score.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lom.cli import OneLineParser
from lom.errors import LOMError
from lom.io import atomic_path
from lom.report.curves import plot_learning_curves
from lom.report.runs import Run, column_labels, find_runs
from lom.report.status import format_status, sweep_status
from lom.report.table import attach_paper_scores, build_table, format_csv, format_markdown

REPORT_DIR = "report"


@dataclass(frozen=True)
class ReportConfig:
    log_path: Path
    include_incomplete: bool = False
    paper_scores: Path | None = None


@dataclass(frozen=True)
class ModesConfig:
    run_dir: Path


@dataclass(frozen=True)
class StatusConfig:
    log_path: Path


def parse_args(argv: list[str] | None = None) -> ReportConfig | ModesConfig | StatusConfig:
    parser = OneLineParser(
        prog="python -m lom.report",
        description="Summarise the runs under LOG_PATH: final normalised score per dataset and agent "
        "(mean ± std over seeds) and learning curves, written to LOG_PATH/report/. With --modes RUN_DIR instead: "
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
        help="also count runs without results.json, scored by their latest evaluation",
    )
    parser.add_argument(
        "--paper_scores", type=Path, help="CSV with columns dataset,agent,score: published numbers shown beside ours"
    )
    args = parser.parse_args(argv)
    if args.modes is not None:
        if args.log_path is not None or args.include_incomplete or args.paper_scores is not None or args.status:
            parser.error("--modes RUN_DIR takes no LOG_PATH, --status, --include_incomplete or --paper_scores")
        return ModesConfig(args.modes)
    if args.log_path is None:
        parser.error("the following arguments are required: log_path (or --modes RUN_DIR)")
    if args.status:
        if args.include_incomplete or args.paper_scores is not None:
            parser.error("--status takes no --include_incomplete or --paper_scores")
        return StatusConfig(args.log_path)
    return ReportConfig(args.log_path, args.include_incomplete, args.paper_scores)


def write_report(config: ReportConfig) -> str:
    """Write the report files and return the Markdown table."""
    runs = find_runs(config.log_path)
    used = select_runs(runs, config.include_incomplete)
    if not used:
        raise LOMError(
            f"no finished runs under {config.log_path} — wait for them to finish or pass --include_incomplete"
        )
    labels = column_labels(used)
    scores: dict[tuple[str, str], list[float]] = {}
    curves: dict[tuple[str, str], list] = {}
    for run, label in zip(used, labels):
        scores.setdefault((run.dataset, label), []).append(run.last_score)
        curves.setdefault((run.dataset, label), []).append((run.steps, run.scores))
    table = build_table(scores)
    if config.paper_scores is not None:
        unmatched = attach_paper_scores(table, config.paper_scores)
        if unmatched:
            warn(f"{len(unmatched)} --paper_scores entries match no dataset/agent we ran: {', '.join(unmatched)}")
    markdown = format_markdown(table)
    out_dir = config.log_path / REPORT_DIR
    with atomic_path(out_dir / "results.md") as tmp:
        tmp.write_text(markdown)
    with atomic_path(out_dir / "results.csv") as tmp:
        tmp.write_text(format_csv(table))
    plot_learning_curves(curves, out_dir / "learning_curves.png")
    return markdown


def select_runs(runs: list[Run], include_incomplete: bool) -> list[Run]:
    """Finished runs, plus (when asked) incomplete ones that have at least one evaluation; warns about the rest."""
    incomplete = [r for r in runs if not r.complete]
    if incomplete and not include_incomplete:
        warn(
            f"{len(incomplete)} incomplete run(s) (no results.json) left out; "
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
    config = parse_args(argv)
    if isinstance(config, ModesConfig):
        return draw_modes(config.run_dir)
    if isinstance(config, StatusConfig):
        return print_status(config.log_path)
    try:
        markdown = write_report(config)
    except LOMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(markdown)
    print(f"wrote {config.log_path / REPORT_DIR}/results.md, results.csv, learning_curves.png")
    return 0


def print_status(log_path: Path) -> int:
    if not log_path.is_dir():
        print(f"error: {log_path} is not a directory — pass the LOG_PATH of the sweep", file=sys.stderr)
        return 1
    try:
        statuses = sweep_status(log_path)
    except LOMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not statuses:
        print(f"error: no runs planned or started under {log_path} — start a sweep with run_baselines.sh",
              file=sys.stderr)
        return 1
    print(format_status(statuses, log_path))
    return 0


def draw_modes(run_dir: Path) -> int:
    from lom.report.modes import write_modes_figure  # torch and the agents load only when a figure is asked for

    try:
        out = write_modes_figure(run_dir)
    except LOMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
