"""`python -m lom.report.steadiness RUN_DIR [RUN_DIR ...] [--parts 3]`: does a run's policy move between evaluations,
or only its evaluation noise? Per run and per part of the run (thirds by default), the mean score, and two spreads:

- between evaluations: std of the differences of successive evaluated scores / √2, the spread one evaluation shows
  against its neighbour;
- evaluation noise: what that spread would be if the policy stood still, √(mean of std² / episodes) from each
  evaluation's own episode std (metrics.csv's `normalized_score_std`) and the run's `eval_episodes`.

A between-evaluation spread well above the evaluation noise means the policy itself changes from one evaluation to
the next, so a score read at one step says little about the steps around it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lom.cli import OneLineParser
from lom.errors import LOMError, run_cli
from lom.report.runs import read_json
from lom.run_folder import CONFIG, METRICS

COLUMNS = ("step", "normalized_score", "normalized_score_std")


@dataclass(frozen=True)
class Part:
    first_step: int
    last_step: int
    mean: float
    between: float  # nan with fewer than two evaluations
    noise: float


def read_scores(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(steps, scores, score stds, episodes per evaluation) of one run; a resumed run's re-logged step keeps its
    latest row."""
    try:
        episodes = int(read_json(run_dir / CONFIG)["eval_episodes"])
        with open(run_dir / METRICS, newline="") as f:
            reader = csv.DictReader(f)
            if not set(COLUMNS) <= set(reader.fieldnames or ()):
                raise LOMError(f"{run_dir / METRICS} lacks {', '.join(COLUMNS)} — it was not written by train.py")
            latest = {int(float(r["step"])): (float(r["normalized_score"]), float(r["normalized_score_std"]))
                      for r in reader}
    except (OSError, KeyError, ValueError) as exc:
        raise LOMError(f"{run_dir} is not a run folder with evaluations ({type(exc).__name__}: {exc}) — pass a "
                       "seed<S> folder written by train.py") from None
    if not latest:
        raise LOMError(f"{run_dir / METRICS} has no evaluations yet")
    steps = np.array(sorted(latest))
    scores, stds = (np.array([latest[s][i] for s in steps]) for i in (0, 1))
    return steps, scores, stds, episodes


def parts(steps: np.ndarray, scores: np.ndarray, stds: np.ndarray, episodes: int, count: int) -> list[Part]:
    """The run cut into `count` equal spans of training steps, each with its mean and two spreads."""
    edges = np.linspace(0, steps[-1], count + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (steps > lo) & (steps <= hi)
        if not inside.any():
            continue
        x, e = scores[inside], stds[inside]
        between = float(np.std(np.diff(x), ddof=1) / math.sqrt(2)) if len(x) > 2 else math.nan
        out.append(Part(int(steps[inside][0]), int(steps[inside][-1]), float(x.mean()), between,
                        float(math.sqrt(np.mean(e ** 2) / episodes))))
    return out


def format_parts(label: str, found: list[Part]) -> list[str]:
    return [f"{label}  steps {p.first_step:>7,}–{p.last_step:>7,}: mean {p.mean:6.1f}  between evaluations "
            f"{p.between:5.1f}  evaluation noise {p.noise:5.1f}" for p in found]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m lom.report.steadiness", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="seed<S> folders written by train.py")
    parser.add_argument("--parts", type=int, default=3, help="spans of training steps to report (default 3)")
    args = parser.parse_args(argv)
    if args.parts < 1:
        raise LOMError(f"--parts must be at least 1, got {args.parts}")
    for run_dir in args.runs:
        steps, scores, stds, episodes = read_scores(run_dir)
        label = "/".join(run_dir.parts[-4:])
        print("\n".join(format_parts(label, parts(steps, scores, stds, episodes, args.parts))))


if __name__ == "__main__":
    run_cli(main)
