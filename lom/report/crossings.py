"""Do the learning curves cross? LOM's mean curve against every other column's, dataset by dataset.

A table of final scores reads as a ranking; with few seeds and noisy evaluations, the mean curves of two agents may
swap places at evaluation after evaluation, and then the last one decides nothing. For each dataset and rival this
counts, over the evaluation steps that every seed of both columns reached, at how many the reference column's mean
is ahead and how often the lead changes hands, over all of them and over their second half. Means within
TIE_POINTS of each other count as a tie, neither ahead nor a change. Curves whose lead changes at least
MIN_CROSSINGS times in the second half are flagged "unstable lead" (early evaluations of young policies cross a lot
and say little about the final ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lom.report.curves import Curve
from lom.report.table import column_sort_key, dataset_sort_key

MIN_CROSSINGS = 2  # lead changes within the second half of the shared evaluations
TIE_POINTS = 1.0  # normalised-score points: closer means are a tie
# LOM's column: "LOM", or "LOM [default]" when a study has several LOM experiments.
REFERENCE_COLUMNS = ("LOM", "LOM [default]")


@dataclass(frozen=True)
class Lead:
    dataset: str
    rival: str
    evaluations: int  # steps both columns were evaluated at
    ahead: int  # of those, where the reference column's mean is higher by more than TIE_POINTS
    changes: int  # times the higher mean switched column between consecutive shared steps
    late_changes: int  # the same within the second half of the shared steps

    @property
    def crosses_often(self) -> bool:
        return self.late_changes >= MIN_CROSSINGS


def reference_column(curves: dict[tuple[str, str], list[Curve]]) -> str | None:
    columns = {c for _, c in curves}
    return next((c for c in REFERENCE_COLUMNS if c in columns), None)


def leads(curves: dict[tuple[str, str], list[Curve]], reference: str) -> list[Lead]:
    """The reference column against every other column on every dataset where both have curves."""
    out = []
    for dataset in sorted({d for d, _ in curves}, key=dataset_sort_key):
        if (dataset, reference) not in curves:
            continue
        for rival in sorted((c for d, c in curves if d == dataset and c != reference), key=column_sort_key):
            pair = [curves[(dataset, reference)], curves[(dataset, rival)]]
            shared = steps_every_seed_reached([run for column in pair for run in column])
            if not len(shared):
                continue
            diff = mean_at(pair[0], shared) - mean_at(pair[1], shared)
            out.append(Lead(dataset, rival, len(shared), int((diff > TIE_POINTS).sum()), lead_changes(diff),
                            lead_changes(diff[len(diff) // 2:])))
    return out


def steps_every_seed_reached(runs: list[Curve]) -> np.ndarray:
    """The evaluation steps in every run's curve: means there compare the same seeds all along."""
    steps = runs[0][0]
    for run_steps, _ in runs[1:]:
        steps = np.intersect1d(steps, run_steps)
    return steps


def mean_at(runs: list[Curve], steps: np.ndarray) -> np.ndarray:
    return np.mean([scores[np.searchsorted(run_steps, steps, side="right") - 1] for run_steps, scores in runs], axis=0)


def lead_changes(diff: np.ndarray) -> int:
    """How often the sign of the difference flips between consecutive steps, ties (|diff| <= TIE_POINTS) skipped."""
    signs = np.sign(diff[np.abs(diff) > TIE_POINTS])
    return int((signs[1:] != signs[:-1]).sum())


def crossings_section(curves: dict[tuple[str, str], list[Curve]]) -> str:
    """results.md's section on crossing curves; empty when there is no LOM column or nothing to compare it with."""
    reference = reference_column(curves)
    found = leads(curves, reference) if reference else []
    return format_leads(found, reference) if found else ""


def format_leads(found: list[Lead], reference: str) -> str:
    rivals = sorted({lead.rival for lead in found}, key=column_sort_key)
    lines = [
        "## Do the curves cross?",
        "",
        f"{reference}'s mean learning curve (over seeds) against each other column's, at the evaluations both have: "
        f"at how many {reference} is ahead by more than {TIE_POINTS:g} point, and how often the lead changed hands "
        f"(in brackets: within the second half of those evaluations; closer means count as ties). **unstable lead**: "
        f"it changed at least {MIN_CROSSINGS} times in the second half, so a final-step ranking there is fragile.",
        "",
        "| dataset | " + " | ".join(f"vs {rival}" for rival in rivals) + " |",
        "|---" + "|---" * len(rivals) + "|",
    ]
    by_dataset: dict[str, dict[str, Lead]] = {}
    for lead in found:
        by_dataset.setdefault(lead.dataset, {})[lead.rival] = lead
    for dataset, row in by_dataset.items():
        cells = []
        for rival in rivals:
            lead = row.get(rival)
            if lead is None:
                cells.append("—")
                continue
            flag = " **unstable lead**" if lead.crosses_often else ""
            cells.append(f"ahead {lead.ahead} / {lead.evaluations}, lead changed {lead.changes}× "
                         f"({lead.late_changes}×){flag}")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
