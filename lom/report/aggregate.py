"""The study's figures in rliable's style: the IQM with its 95 % CI per column (aggregate_iqm.png) and the
performance profile, the fraction of runs scoring above τ with its bootstrap band (performance_profile.png).

Both show the table's `study_row` (all datasets pooled, or the only dataset) for the columns that have it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lom.io import atomic_path  # noqa: E402
from lom.report.stats import performance_profile  # noqa: E402
from lom.report.table import AGGREGATE_ROW, CI_HEADER, ScoreTable, window_phrase  # noqa: E402

PROFILE_POINTS = 201  # thresholds τ from the lowest to the highest run score
ROW_INCHES = 0.42  # height of one column's interval in aggregate_iqm.png


def column_colors(table: ScoreTable) -> dict[str, tuple]:
    """Colour per column, as learning_curves.png gives them (tab10 in table order)."""
    return {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(table.columns)}


def plot_aggregate_iqm(table: ScoreTable, path: str | Path) -> None:
    """Horizontal interval plot: per column a bar over the IQM's CI, a tick at the IQM, its value beside."""
    columns = table.study_columns
    colors = column_colors(table)
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + ROW_INCHES * len(columns)))
    for y, column in enumerate(columns):
        summary = table.summaries[table.study_row, column]
        low, high, value = summary.iqm.low, summary.iqm.high, summary.iqm.value
        ax.barh(y, max(high - low, 1e-9), left=low, height=0.6, color=colors[column], alpha=0.75)
        ax.vlines(value, y - 0.3, y + 0.3, color="black", linewidth=2)
        ax.annotate(f"{value:.1f} [{low:.1f}, {high:.1f}] (n={summary.n})", (high, y), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=9)
    ax.set_yticks(range(len(columns)), columns)
    ax.invert_yaxis()
    ax.use_sticky_edges = False  # a bar's left edge is sticky: the lowest interval would sit on the frame
    ax.margins(x=0.35)
    ax.set_xlabel(f"IQM of the final normalised score, {CI_HEADER}")
    ax.set_title(_study_title(table), fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def plot_performance_profile(table: ScoreTable, path: str | Path) -> None:
    """Fraction of runs with a score above τ, per column, with its 95 % stratified-bootstrap band."""
    columns = table.study_columns
    colors = column_colors(table)
    every = np.concatenate([s for c in columns for s in table.strata(c)])
    taus = np.linspace(min(0.0, every.min()), every.max(), PROFILE_POINTS)
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for column in columns:
        fraction, low, high = performance_profile(table.strata(column), taus)
        ax.plot(taus, fraction, color=colors[column], label=column, linewidth=2)
        ax.fill_between(taus, low, high, color=colors[column], alpha=0.2, linewidth=0)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(_study_title(table), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def _study_title(table: ScoreTable) -> str:
    where = f"{AGGREGATE_ROW} ({len(table.datasets)})" if table.study_row == AGGREGATE_ROW else table.study_row
    return f"{where}; each run scored by {window_phrase(table.final_window)}"


def _save(fig: plt.Figure, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
