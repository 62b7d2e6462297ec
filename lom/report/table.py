"""The results table: final normalised score, mean ± std over seeds, one row per dataset, one column per agent."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lom.errors import LOMError

# Row and column order of the paper's tables, so our table reads side by side with it.
D4RL_KINDS = ("medium-replay", "full-replay", "medium", "medium-expert", "expert", "random")
D4RL_ENVS = ("halfcheetah", "hopper", "walker2d")
AGENT_ORDER = ("LOM", "IQL", "BC", "TD3BC")
_D4RL_NAME = re.compile(r"^(halfcheetah|hopper|walker2d)-(.+)-v\d+$")


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    n: int


@dataclass
class ScoreTable:
    """Cells keyed by (dataset, column); `paper` holds user-supplied published scores keyed the same way."""

    datasets: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    paper: dict[tuple[str, str], float] = field(default_factory=dict)

    def best_columns(self, dataset: str) -> set[str]:
        """Columns with the highest mean in this row (several on a tie)."""
        cells = [(c, self.cells.get((dataset, c))) for c in self.columns]
        means = {c: cell.mean for c, cell in cells if cell is not None and not math.isnan(cell.mean)}
        if not means:
            return set()
        top = max(means.values())
        return {c for c, m in means.items() if m == top}

    def has_paper(self, column: str) -> bool:
        return any(c == column for _, c in self.paper)


def build_table(scores: dict[tuple[str, str], list[float]]) -> ScoreTable:
    """Aggregate per-seed scores keyed by (dataset, column). std is numpy's default (ddof=0) over seeds."""
    cells = {
        key: Cell(float(np.mean(values)), float(np.std(values)), len(values)) for key, values in scores.items() if values
    }
    datasets = sorted({d for d, _ in cells}, key=dataset_sort_key)
    columns = sorted({c for _, c in cells}, key=column_sort_key)
    return ScoreTable(datasets, columns, cells)


def dataset_sort_key(name: str) -> tuple:
    match = _D4RL_NAME.match(name.lower())
    if match and match.group(2) in D4RL_KINDS:
        return (0, D4RL_KINDS.index(match.group(2)), D4RL_ENVS.index(match.group(1)), name.lower())
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
    headers = ["dataset"]
    for column in table.columns:
        headers.append(column)
        if table.has_paper(column):
            headers.append(f"{column} (paper)")
    lines = ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
    for dataset in table.datasets:
        best = table.best_columns(dataset)
        cells = [dataset]
        for column in table.columns:
            cells.append(_format_cell(table.cells.get((dataset, column)), bold=column in best))
            if table.has_paper(column):
                paper = table.paper.get((dataset, column))
                cells.append("—" if paper is None else _one_decimal(paper))
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nFinal D4RL normalised score: mean ± std over seeds (std with ddof=0), n = number of seeds; "
        "bold = best mean in the row."
    )
    if table.paper:
        note += " (paper) = published scores supplied with --paper_scores."
    return "\n".join(lines) + "\n" + note + "\n"


def format_csv(table: ScoreTable) -> str:
    header = ["dataset"]
    for column in table.columns:
        header += [f"{column}_mean", f"{column}_std", f"{column}_n"]
        if table.has_paper(column):
            header.append(f"{column}_paper")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for dataset in table.datasets:
        row: list = [dataset]
        for column in table.columns:
            cell = table.cells.get((dataset, column))
            row += ["", "", 0] if cell is None else [_number(cell.mean), _number(cell.std), cell.n]
            if table.has_paper(column):
                paper = table.paper.get((dataset, column))
                row.append("" if paper is None else _number(paper))
        writer.writerow(row)
    return out.getvalue()


def _format_cell(cell: Cell | None, bold: bool) -> str:
    if cell is None:
        return "—"
    value = f"{_one_decimal(cell.mean)} ± {_one_decimal(cell.std)}"
    return f"{f'**{value}**' if bold else value} (n={cell.n})"


def _one_decimal(x: float) -> str:
    return f"{round(x, 1) + 0.0:.1f}"  # + 0.0 turns -0.0 into 0.0


def _number(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"
