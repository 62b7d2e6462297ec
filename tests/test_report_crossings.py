"""lom.report's "Do the curves cross?" section: lead counts with known answers, and the section in results.md."""

from __future__ import annotations

import numpy as np
from test_report import write_run

from lom.report.cli import main
from lom.report.crossings import crossings_section, leads


def curve(*scores: float, every: int = 100):
    return (np.arange(1, len(scores) + 1) * every, np.array(scores, dtype=float))


def test_curves_that_swap_places_in_the_second_half_are_flagged_not_early_swaps():
    (lead,) = leads({("d", "LOM"): [curve(10, 20, 30, 40)], ("d", "BC"): [curve(20, 10, 40, 30)]}, "LOM")
    assert (lead.rival, lead.evaluations, lead.ahead, lead.changes, lead.late_changes) == ("BC", 4, 2, 3, 1)
    assert not lead.crosses_often  # one change in the second half (steps 300, 400)
    (late,) = leads({("d", "LOM"): [curve(90, 90, 90, 10, 30, 10, 30)],
                     ("d", "BC"): [curve(10, 10, 10, 20, 20, 20, 20)]}, "LOM")
    assert (late.changes, late.late_changes, late.crosses_often) == (4, 3, True)


def test_means_within_a_point_are_ties_neither_ahead_nor_a_change():
    (lead,) = leads({("d", "LOM"): [curve(5, 5, 6, 7, 8, 8.5)], ("d", "IQL"): [curve(1, 5.5, 2, 3, 4, 9)]}, "LOM")
    assert (lead.ahead, lead.changes, lead.crosses_often) == (4, 0, False)


def test_only_steps_that_every_seed_of_both_columns_reached_are_compared():
    (lead,) = leads({
        ("d", "LOM"): [curve(10, 10, 90), curve(30, 30, 90)],  # mean 20, 20, 90
        ("d", "BC"): [curve(15, 25), curve(15, 25, 990, 990)],  # its first seed stopped at step 200
    }, "LOM")
    assert (lead.evaluations, lead.ahead, lead.changes) == (2, 1, 1)
    assert leads({("d", "LOM"): [curve(1, 2)], ("d", "BC"): [curve(1, 2, every=1000)]}, "LOM") == []


def test_lom_default_is_the_reference_when_a_study_has_several_lom_experiments_and_none_means_no_section():
    curves = {("d", "LOM [default]"): [curve(2, 2)], ("d", "LOM [n10]"): [curve(1, 3)], ("d", "IQL"): [curve(1, 1)]}
    section = crossings_section(curves)
    assert "LOM [default]'s mean learning curve" in section and "| vs LOM [n10] | vs IQL |" in section
    assert crossings_section({("d", "IQL"): [curve(1, 1)], ("d", "BC"): [curve(2, 2)]}) == ""


def test_results_md_says_where_a_final_step_ranking_is_fragile(tmp_path):
    log = tmp_path / "runs"
    for seed in range(2):
        write_run(log, "hopper-medium-v2", "LOM", seed, [10, 30, 20, 40, 30, 50], 50.0)
        write_run(log, "hopper-medium-v2", "BC", seed, [20, 20, 30, 30, 40, 40], 40.0)
        write_run(log, "walker2d-medium-v2", "LOM", seed, [50, 60, 70], 70.0)
        write_run(log, "walker2d-medium-v2", "BC", seed, [10, 20, 30], 30.0)
    assert main([str(log)]) == 0
    text = (log / "report" / "results.md").read_text()
    section = text[text.index("## Do the curves cross?"):]
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines() if line.startswith("| ")}
    assert "ahead 3 / 6, lead changed 5× (2×) **unstable lead**" in rows["hopper-medium-v2"]
    assert "ahead 3 / 3, lead changed 0× (0×)" in rows["walker2d-medium-v2"]
    assert "unstable" not in rows["walker2d-medium-v2"]
