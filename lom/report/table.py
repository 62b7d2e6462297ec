"""The results table: per dataset and over all datasets, per column (agent), the IQM of the runs' final normalised
scores with its stratified-bootstrap 95 % CI, and per column a table of IQM, mean, median (each with its CI), std
and n (see lom.report.stats)."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lom.config import D4RL_ENVS, D4RL_KINDS, PAPER_TABLE_KINDS
from lom.errors import LOMError
from lom.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_LEVEL, Estimate, Summary, summarise

# Row and column order of the paper's tables, so our table reads side by side with it.
# The paper's kinds in its order, then the ones it does not report.
TABLE_KINDS = PAPER_TABLE_KINDS + tuple(kind for kind in D4RL_KINDS if kind not in PAPER_TABLE_KINDS)
AGENT_ORDER = ("LOM", "IQL", "BC", "TD3BC")
_D4RL_NAME = re.compile(rf"^({'|'.join(D4RL_ENVS)})-(.+)-v\d+$")
AGGREGATE_ROW = "all datasets"
QUOTED_AGGREGATE = f'"{AGGREGATE_ROW}"'  # as the notes under the tables name that row
CI_HEADER = f"{round(CI_LEVEL * 100)} % CI"
CSV_STATISTICS = ("iqm", "mean", "median")


@dataclass
class ScoreTable:
    """Each run's score keyed by (dataset, column), the statistics of every cell keyed by (row, column), where the
    rows are the datasets and, with two or more datasets, AGGREGATE_ROW; `paper` holds user-supplied published
    scores keyed by (dataset, column)."""

    datasets: list[str]
    columns: list[str]
    scores: dict[tuple[str, str], np.ndarray]
    summaries: dict[tuple[str, str], Summary]
    final_window: int = 1
    paper: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def rows(self) -> list[str]:
        return self.datasets + ([AGGREGATE_ROW] if len(self.datasets) > 1 else [])

    @property
    def study_row(self) -> str:
        """The row that sums the study up: AGGREGATE_ROW, or the only dataset."""
        return self.rows[-1]

    @property
    def study_columns(self) -> list[str]:
        """The columns with a cell in `study_row` (over several datasets: those with runs on every dataset)."""
        return [c for c in self.columns if (self.study_row, c) in self.summaries]

    def strata(self, column: str) -> list[np.ndarray]:
        """The column's run scores, one array per dataset (a column of `study_columns`)."""
        return [self.scores[d, column] for d in self.datasets]

    def best_columns(self, row: str) -> set[str]:
        """Columns with the highest IQM in this row (several on a tie)."""
        values = {c: self.summaries[row, c].iqm.value for c in self.columns if (row, c) in self.summaries}
        top = max(values.values(), default=math.nan)
        return {c for c, v in values.items() if v == top}

    def has_paper(self, column: str) -> bool:
        return any(c == column for _, c in self.paper)


def build_table(scores: dict[tuple[str, str], list[float]], final_window: int = 1) -> ScoreTable:
    """Summarise per-run scores keyed by (dataset, column): every dataset's cell, and with two or more datasets the
    AGGREGATE_ROW cell of each column that has runs on all of them."""
    arrays = {key: np.asarray(values, dtype=np.float64) for key, values in scores.items() if values}
    datasets = sorted({d for d, _ in arrays}, key=dataset_sort_key)
    columns = sorted({c for _, c in arrays}, key=column_sort_key)
    summaries = {key: summarise([values]) for key, values in arrays.items()}
    if len(datasets) > 1:
        for column in columns:
            if all((d, column) in arrays for d in datasets):
                summaries[AGGREGATE_ROW, column] = summarise([arrays[d, column] for d in datasets])
    return ScoreTable(datasets, columns, arrays, summaries, final_window)


def dataset_sort_key(name: str) -> tuple:
    match = _D4RL_NAME.match(name.lower())
    if match and match.group(2) in TABLE_KINDS:
        return (0, TABLE_KINDS.index(match.group(2)), D4RL_ENVS.index(match.group(1)), name.lower())
    return (1, 0, 0, name.lower())


def column_sort_key(column: str) -> tuple:
    agent = column.split(" [")[0]
    rank = AGENT_ORDER.index(agent) if agent in AGENT_ORDER else len(AGENT_ORDER)
    return (rank, column)


def attach_paper_scores(table: ScoreTable, paper_csv: str | Path) -> list[str]:
    """Add published scores for the rows and agents we have; returns the CSV entries that matched nothing."""
    entries = read_paper_scores(paper_csv)
    datasets = {d.lower(): d for d in table.datasets}
    columns_by_agent: dict[str, list[str]] = {}
    for column in table.columns:
        columns_by_agent.setdefault(column.split(" [")[0].lower(), []).append(column)
    unmatched = []
    for dataset, agent, score in entries:
        row = datasets.get(dataset.lower())
        columns = columns_by_agent.get(agent.lower(), [])
        if row is None or not columns:
            unmatched.append(f"{dataset},{agent}")
            continue
        for column in columns:
            table.paper[row, column] = score
    return unmatched


def read_paper_scores(path: str | Path) -> list[tuple[str, str, float]]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise LOMError(f"cannot read --paper_scores {path} ({e.strerror}) — pass a CSV with columns dataset,agent,score")
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or ()}
    if not {"dataset", "agent", "score"} <= set(fields):
        raise LOMError(f"{path} needs the header dataset,agent,score — found {reader.fieldnames}")
    entries = []
    for line, row in enumerate(reader, start=2):
        values = [(row[fields[k]] or "").strip() for k in ("dataset", "agent", "score")]
        try:
            entries.append((values[0], values[1], float(values[2])))
        except ValueError:
            raise LOMError(f"{path} line {line}: score {values[2]!r} is not a number — write it like 45.1") from None
    return entries


def format_markdown(table: ScoreTable) -> str:
    """results.md: the main table, then the statistics of every column."""
    return format_main_table(table) + "\n" + format_statistics(table)


def format_main_table(table: ScoreTable) -> str:
    """One row per dataset (and over all datasets), one column per agent; cells "IQM [95 % CI] (n=runs)"."""
    headers = ["dataset"]
    for column in table.columns:
        headers.append(column)
        if table.has_paper(column):
            headers.append(f"{column} (published)")
    lines = [
        # Not "D4RL": the built-in benchmark and collected files have references of their own.
        f"Final normalised score of each run (0: its dataset's low reference return, 100: its high one): "
        f"{window_words(table.final_window)}. "
        f"Cells: IQM [{CI_HEADER}] (n = runs); bold: best IQM in the row.",
        "",
        "| " + " | ".join(headers) + " |",
        "|---" + "|---:" * (len(headers) - 1) + "|",
    ]
    for row in table.rows:
        best = table.best_columns(row)
        cells = [row]
        for column in table.columns:
            cells.append(_main_cell(table.summaries.get((row, column)), bold=column in best))
            if table.has_paper(column):
                paper = table.paper.get((row, column))
                cells.append("—" if paper is None else _one_decimal(paper))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + main_table_notes(table) + "\n"


def window_words(final_window: int) -> str:
    """How a run is scored, with the flag that says so."""
    return f"{window_phrase(final_window)} (`--final_window {final_window}`)"


def window_phrase(final_window: int) -> str:
    if final_window == 1:
        return "its last evaluation"
    return f"the mean of its last {final_window} evaluations"


def main_table_notes(table: ScoreTable) -> str:
    notes = [
        "IQM: interquartile mean, the mean of the middle 50 % of the runs (of 3 runs or fewer, their mean). "
        f"{CI_HEADER}: percentile interval of {BOOTSTRAP_RESAMPLES:,} stratified-bootstrap resamples (seed "
        f"{BOOTSTRAP_SEED}): each dataset's runs drawn with replacement within that dataset; one run per dataset "
        "gives a zero-width interval, which measures no seed spread."
    ]
    if len(table.datasets) > 1:
        missing = ", ".join(c for c in table.columns if c not in table.study_columns)
        lacking = f"; — where a column lacks runs on some dataset ({missing})" if missing else ""
        notes.append(f"{QUOTED_AGGREGATE}: the IQM of every run of every dataset pooled, the bootstrap resampling "
                     f"each dataset on its own{lacking}.")
    if table.paper:
        notes.append("(published) = published scores supplied with --paper_scores.")
    return " ".join(notes)


def format_statistics(table: ScoreTable) -> str:
    """Per column: IQM, mean and median with their 95 % CIs, std and n, per dataset and over all datasets."""
    lines = [
        "## Statistics per column",
        "",
        f"Each run scored by {window_words(table.final_window)}. Mean and median: of the runs on one dataset; "
        f"in the {QUOTED_AGGREGATE} row, the mean and the median over datasets of each dataset's mean (rliable's "
        "aggregate_mean and aggregate_median), while IQM pools the runs. std: ddof = 1 (— for one run); in the "
        f"{QUOTED_AGGREGATE} row the pooled within-dataset std, sqrt(Σ (n_d − 1) s_d² / Σ (n_d − 1)). n: runs.",
    ]
    header = ["dataset", "IQM", CI_HEADER, "mean", CI_HEADER, "median", CI_HEADER, "std", "n"]
    for column in table.columns:
        lines += ["", f"### {column}", "", "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        for row in table.rows:
            summary = table.summaries.get((row, column))
            if summary is not None:
                lines.append("| " + " | ".join([row, *_statistics_cells(summary)]) + " |")
    return "\n".join(lines) + "\n"


def format_csv(table: ScoreTable) -> str:
    """One line per (row, column) with runs or a published score: the statistics as numbers (4 decimals)."""
    header = ["dataset", "agent", "final_window", "n"]
    for name in CSV_STATISTICS:
        header += [name, f"{name}_ci_low", f"{name}_ci_high"]
    header.append("std")
    if table.paper:
        header.append("published")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        for column in table.columns:
            summary, paper = table.summaries.get((row, column)), table.paper.get((row, column))
            if summary is None and paper is None:
                continue
            line: list = [row, column, table.final_window, 0 if summary is None else summary.n]
            if summary is None:
                line += [""] * (3 * len(CSV_STATISTICS) + 1)
            else:
                for name in CSV_STATISTICS:
                    estimate: Estimate = getattr(summary, name)
                    line += [_number(estimate.value), _number(estimate.low), _number(estimate.high)]
                line.append(_number(summary.std))
            if table.paper:
                line.append("" if paper is None else _number(paper))
            writer.writerow(line)
    return out.getvalue()


def _main_cell(summary: Summary | None, bold: bool) -> str:
    if summary is None:
        return "—"
    value = _one_decimal(summary.iqm.value)
    return f"{f'**{value}**' if bold else value} {_interval(summary.iqm)} (n={summary.n})"


def _statistics_cells(summary: Summary) -> list[str]:
    cells = []
    for estimate in (summary.iqm, summary.mean, summary.median):
        cells += [_one_decimal(estimate.value), _interval(estimate)]
    return cells + ["—" if math.isnan(summary.std) else _one_decimal(summary.std), str(summary.n)]


def _interval(estimate: Estimate) -> str:
    return f"[{_one_decimal(estimate.low)}, {_one_decimal(estimate.high)}]"


def _one_decimal(x: float) -> str:
    return f"{round(x, 1) + 0.0:.1f}"  # + 0.0 turns -0.0 into 0.0


def _number(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"
