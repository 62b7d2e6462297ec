"""Do the learning curves cross? LOM's mean curve against every other column's, dataset by dataset.

A table of final scores reads as a ranking; with few seeds and noisy evaluations, the mean curves of two agents may
swap places at evaluation after evaluation, and then the last one decides nothing. For each dataset and rival this
counts, over the evaluation steps both columns have, at how many the reference column's mean is ahead and how
often the lead changes hands (ties skipped), over all of them and over their second half; curves whose lead changes
at least MIN_CROSSINGS times in the second half are flagged (early evaluations of young policies cross a lot and
say little about the final ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lom.report.curves import Curve, mean_std_curve
from lom.report.table import column_sort_key, dataset_sort_key

MIN_CROSSINGS = 2  # lead changes within the second half of the shared evaluations
# LOM's column: "LOM", or "LOM [default]" when a study has several LOM experiments.
REFERENCE_COLUMNS = ("LOM", "LOM [default]")


@dataclass(frozen=True)
class Lead:
    dataset: str
    rival: str
    evaluations: int  # steps both columns were evaluated at
    ahead: int  # of those, where the reference column's mean is higher
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
        ref_steps, ref_means, _ = mean_std_curve(curves[(dataset, reference)])
        rivals = sorted((c for d, c in curves if d == dataset and c != reference), key=column_sort_key)
        for rival in rivals:
            steps, means, _ = mean_std_curve(curves[(dataset, rival)])
            shared, ref_at, rival_at = np.intersect1d(ref_steps, steps, return_indices=True)
            diff = ref_means[ref_at] - means[rival_at]
            out.append(Lead(dataset, rival, len(shared), int((diff > 0).sum()), lead_changes(diff),
                            lead_changes(diff[len(diff) // 2:])))
    return out


def lead_changes(diff: np.ndarray) -> int:
    """How often the sign of the difference flips between consecutive steps, steps with a tie skipped."""
    signs = np.sign(diff[diff != 0])
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
        f"at how many {reference} is ahead, and how often the lead changed hands (in brackets: within the second half "
        f"of those evaluations). **crossing**: the lead changed at least {MIN_CROSSINGS} times in the second half, so "
        "the final-step score decides nothing there.",
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
            cells.append("—" if lead is None else f"ahead {lead.ahead} / {lead.evaluations}, lead changed "
                         f"{lead.changes}× ({lead.late_changes}×)" + (" **crossing**" if lead.crosses_often else ""))
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
