"""Learning curves: one panel per dataset, per column the mean ± std band of the normalised score over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lom.io import atomic_path  # noqa: E402
from lom.report.table import column_sort_key, dataset_sort_key  # noqa: E402

Curve = tuple[np.ndarray, np.ndarray]
PANEL_INCHES = (4.2, 3.2)  # width, height of one dataset's panel
MIN_WIDTH_INCHES = 6.4  # a single panel gets this much width, so that its legend fits in two columns
# The shared legend above the panels: an entry is its line sample plus its label, in the default 10-pt font.
LEGEND_ENTRY_INCHES, LEGEND_CHAR_INCHES, LEGEND_ROW_INCHES, LEGEND_PAD_INCHES = 0.7, 0.085, 0.22, 0.1


def mean_std_curve(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds at every evaluated step; a step counts only the seeds that reached it."""
    steps = np.unique(np.concatenate([s for s, _ in curves])) if curves else np.zeros(0, dtype=np.int64)
    means, stds = np.zeros(len(steps)), np.zeros(len(steps))
    for i, step in enumerate(steps):
        values = [scores[s == step][-1] for s, scores in curves if np.any(s == step)]
        means[i], stds[i] = np.mean(values), np.std(values)
    return steps, means, stds


def plot_learning_curves(curves: dict[tuple[str, str], list[Curve]], path: str | Path) -> None:
    """`curves` maps (dataset, column) to each seed's (steps, scores); writes a PNG to `path` atomically."""
    fig = learning_curves_figure(curves)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def learning_curves_figure(curves: dict[tuple[str, str], list[Curve]]) -> plt.Figure:
    """The figure `plot_learning_curves` saves: a panel per dataset under one legend sized to its labels."""
    datasets = sorted({d for d, _ in curves}, key=dataset_sort_key)
    columns = sorted({c for _, c in curves}, key=column_sort_key)
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(columns)}
    ncols = min(len(datasets), 3 if len(datasets) <= 9 else 5)
    nrows = math.ceil(len(datasets) / ncols)
    width = max(PANEL_INCHES[0] * ncols, MIN_WIDTH_INCHES)
    entry = LEGEND_ENTRY_INCHES + LEGEND_CHAR_INCHES * max(len(c) for c in columns)
    legend_cols = max(1, min(len(columns), int(width // entry)))
    legend_inches = LEGEND_ROW_INCHES * math.ceil(len(columns) / legend_cols) + LEGEND_PAD_INCHES
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, PANEL_INCHES[1] * nrows + legend_inches), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        for column in columns:
            seeds = [c for c in curves.get((dataset, column), []) if len(c[0])]
            if not seeds:
                continue
            steps, mean, std = mean_std_curve(seeds)
            ax.plot(steps, mean, color=colors[column], label=column, marker="." if len(steps) < 3 else None)
            ax.fill_between(steps, mean - std, mean + std, color=colors[column], alpha=0.2, linewidth=0)
        ax.set_title(dataset, fontsize=11)
        ax.set_xlabel("training steps")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(datasets) :]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colors[c], linewidth=2) for c in columns]
    fig.legend(handles, columns, loc="upper center", ncol=legend_cols, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - legend_inches / fig.get_figheight()))
    return fig
