"""README.md's "At a glance" table, recomputed from recipes/results: each row's numbers and its
verdict (met only where every seed and the interval's upper end are within the goal)."""

from __future__ import annotations

import json
from collections import defaultdict

from kws.stats import mean_interval
from tests.recipes.test_results import RESULTS, ROOT, comparison

GOAL_POINTS = 8.0  # the transfer issue's gate: held-out engine within 8 points of in-domain


def _glance() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("At a glance")
    return " ".join(text[start : text.index("## Optional parts")].split())


def _cells(glance: str, name: str) -> list[str]:
    """The row's cells after its name: goal, measured, verdict."""
    start = glance.index(f"| {name} |")
    row = glance[start:].split(" |", 4)
    return [cell.strip(" |") for cell in row[1:4]]


def test_growth_row_is_the_paired_difference_to_the_uniform_rival():
    by_cell = defaultdict(dict)
    for r in comparison():
        by_cell[(r["method"], r["budget_params"])][r["seed"]] = 100 * r["test_accuracy"]
    _, measured, verdict = _cells(_glance(), "growth by splitting against a uniform DS-CNN of "
                                  "the same size")  # fmt: skip
    for budget, where in ((9000, "points at 9 K params"), (23000, "at 23 K")):
        split = by_cell[("splitting", budget)]
        uniform, random_split = (
            mean_interval([split[s] - by_cell[(rival, budget)][s] for s in sorted(split)])
            for rival in ("uniform", "random_split")
        )
        assert f"{uniform.mean:.2f} +- {uniform.half_width:.2f} {where}" in measured, budget
        assert f"{random_split.mean:+.2f}" in measured, budget
        assert uniform.mean - uniform.half_width < 0  # splitting never wins with confidence
    assert verdict == "**not met**"


def _flite_rows() -> list[dict]:
    rows = json.loads((RESULTS / "transfer_flite_logit_adjust.json").read_text())
    arm = "medium + MBROLA + 2x RHVoice + Pico, distilled from the three runs' ensemble"
    return [r for r in rows if r["training"] == arm]


def test_flite_row_and_its_verdict():
    rows = _flite_rows()
    after = mean_interval([r["gap_at_offset"] for r in rows])
    before = mean_interval([r["gap_before"] for r in rows])
    goal, measured, verdict = _cells(_glance(), "leave-flite-out gap (in-domain minus held-out "
                                     "engine)")  # fmt: skip
    assert goal == f"<= {GOAL_POINTS:.0f} points" and len(rows) == 7
    assert measured.startswith(
        f"**{after.mean:.1f} +- {after.half_width:.1f}** on seven seeds with an unknown-class "
        f"offset chosen on Piper; {before.mean:.1f} +- {before.half_width:.1f} without it"
    )
    met = all(r["gap_at_offset"] <= GOAL_POINTS for r in rows)
    assert met and after.mean + after.half_width <= GOAL_POINTS
    assert verdict == "met with the offset"
    # ... and only with it: without, the interval's upper end is past the goal
    assert before.mean + before.half_width > GOAL_POINTS


def test_kokoro_row_and_its_verdict():
    shift = json.loads((RESULTS / "transfer_kokoro_shift.json").read_text())
    (rows,) = [a["rows"] for a in shift["arms"] if a["training"].endswith("ensemble")]

    def percent(row, key):
        return 100 * row[key][0] / row[key][1]

    after = mean_interval(
        [percent(r, "in_domain_at_offset") - percent(r, "held_out_at_offset") for r in rows]
    )
    before = mean_interval([percent(r, "in_domain") - percent(r, "held_out") for r in rows])
    step = mean_interval([percent(r, "held_out_at_offset") - percent(r, "held_out") for r in rows])
    glance = _glance()
    _, measured, verdict = _cells(glance, "leave-Kokoro-out gap")
    assert len(rows) == 5 and measured == (
        f"**{after.mean:.1f} +- {after.half_width:.1f}** on five seeds with the same kind of "
        f"offset; {before.mean:.1f} +- {before.half_width:.1f} on the same seeds without it"
    )
    assert after.mean - after.half_width > GOAL_POINTS and verdict == "**not met**"
    assert f"the offset ({step.mean:+.1f} +- {step.half_width:.1f})" in glance


def test_the_offsets_price_is_stated():
    rows = _flite_rows()
    after = mean_interval([r["in_domain"]["at_offset"]["unknown_recall_percent"] for r in rows])
    before = mean_interval([r["in_domain"]["before"]["unknown_recall_percent"] for r in rows])
    glance = _glance()
    assert f"rejected {after.mean:.0f}% of the time instead of {before.mean:.0f}%" in glance
    runs = json.loads((RESULTS / "transfer_flite_logit_adjust_stream.json").read_text())
    at = [{p["threshold"]: p["miss_rate_percent"] for p in run["sweep"]} for run in runs]
    assert f"({at[1][0.9]:.1f}% against {at[0][0.75]:.1f}% at 50 per hour)" in glance
