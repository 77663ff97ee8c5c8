"""The committed results (recipes/results/) and the documents that quote them.

The growth comparison's table in recipes/README.md is typed from `growth_comparison.json`; these
tests recompute every mean and interval from the JSON and require the README to state them, so
a table and the data behind it cannot drift apart. Links in the READMEs must resolve.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from kws.stats import MeanInterval, mean_interval

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "recipes" / "results"
RECORD_KEYS = {
    "method", "budget_params", "seed", "params", "macs", "val_accuracy", "test_accuracy",
    "test_examples", "epochs", "wall_s", "train_compute_macs",
}  # fmt: skip


def comparison() -> list[dict]:
    return json.loads((RESULTS / "growth_comparison.json").read_text())


def test_growth_comparison_is_complete_and_of_the_documented_schema():
    records = comparison()
    cells = defaultdict(set)
    for record in records:
        assert RECORD_KEYS <= set(record), record
        assert 0.0 <= record["test_accuracy"] <= 1.0 and record["test_examples"] > 1000
        cells[(record["method"], record["budget_params"])].add(record["seed"])
    methods = {method for method, _ in cells}
    assert {"splitting", "uniform", "random_split", "random_init"} <= methods
    assert {budget for _, budget in cells} == {9000, 23000}
    assert all(seeds == {0, 1, 2} for seeds in cells.values()), cells
    # equal size per seed: every rival within 2% of the grown model's parameters (the uniform
    # rival is the closest uniform width)
    grown = {(r["budget_params"], r["seed"]): r["params"] for r in records
             if r["method"] == "splitting"}  # fmt: skip
    for r in records:
        assert abs(r["params"] - grown[(r["budget_params"], r["seed"])]) <= 0.02 * r["params"]


def test_recipes_readme_states_the_comparisons_means_and_intervals():
    text = (ROOT / "recipes" / "README.md").read_text()
    cells = defaultdict(list)
    for r in comparison():
        cells[(r["method"], r["budget_params"])].append(100 * r["test_accuracy"])
    for (method, budget), values in cells.items():
        stat = mean_interval(values)
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}" in text, (method, budget)


@pytest.mark.parametrize("doc", ["README.md", "recipes/README.md", "benchmarks/RESULTS.md"])
def test_relative_links_resolve(doc):
    path = ROOT / doc
    targets = re.findall(r"\]\(([^)#\s]+)\)", path.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    missing = [t for t in local if not (path.parent / t).exists()]
    assert missing == []


def _value(r: dict, field: str) -> float:
    """A row's accuracy (percent) of `field`, or its gap (in-domain minus held-out, points)."""
    if field == "gap":
        return _value(r, "in_domain") - _value(r, "held_out_engine")
    return r[field]["accuracy_percent"]


def _assert_transfer_table(records: list[dict], held_out_examples: dict[str, int]) -> dict:
    """Every row (training set, held-out engine) of a transfer table has seeds 0-2, and the
    README states its means and intervals (accuracies to 0.01, gaps to 0.1 points) and its gaps
    per seed, recomputed here. Returns the rows."""
    text = (ROOT / "recipes" / "README.md").read_text()
    rows = defaultdict(list)
    for r in records:
        assert r["held_out_engine"]["examples"] == held_out_examples[r["held_out"]]
        assert r["in_domain"]["examples"] in (1244, 1567)  # the test split without that engine
        if r["validation_engine_mbrola"] is not None:
            assert r["validation_engine_mbrola"]["examples"] == 5250
        rows[(r["training"], r["held_out"])].append(r)
    for key, runs in rows.items():
        assert sorted(x["seed"] for x in runs) == [0, 1, 2], key
        runs.sort(key=lambda x: x["seed"])
        for field in ("validation_engine_mbrola", "in_domain", "held_out_engine"):
            if runs[0][field] is None:
                continue
            stat = mean_interval([r[field]["accuracy_percent"] for r in runs])
            assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in text, (key, field)
        gaps = [_value(r, "gap") for r in runs]
        stat = mean_interval(gaps)
        assert f"{stat.mean:.1f} +- {stat.half_width:.1f}" in text, (key, "gap")
        assert ", ".join(f"{g:.1f}" for g in gaps) in text, (key, "gap per seed")
    return rows


def test_recipes_readme_states_the_accent_and_equalizer_transfer_table():
    """The stronger-accent / equalizer table is typed from transfer_accents.json."""
    records = json.loads((RESULTS / "transfer_accents.json").read_text())
    assert all(r["in_domain"]["examples"] == 1567 for r in records)
    assert len(_assert_transfer_table(records, {"kokoro": 1653})) == 4


def test_recipes_readme_states_the_rhvoice_transfer_table():
    """The RHVoice table is typed from transfer_rhvoice.json; a run that trained on MBROLA has
    no validation-engine number (MBROLA is no longer unheard)."""
    records = json.loads((RESULTS / "transfer_rhvoice.json").read_text())
    for r in records:
        assert (r["validation_engine_mbrola"] is None) == ("MBROLA" in r["training"]), r["run"]
    rows = _assert_transfer_table(records, {"kokoro": 1653, "flite": 4828})
    assert {held_out for _, held_out in rows} == {"flite", "kokoro"}


def test_recipes_readme_states_the_combined_levers_per_seed():
    """Two seeds only: the README gives each seed's numbers (from transfer_combined.json) and
    the gaps, and no three-seed interval."""
    records = json.loads((RESULTS / "transfer_combined.json").read_text())
    text = (ROOT / "recipes" / "README.md").read_text()
    for r in records:
        assert r["held_out_engine"]["examples"] == 1653 and r["in_domain"]["examples"] == 1567
        ind, held = r["in_domain"]["accuracy_percent"], r["held_out_engine"]["accuracy_percent"]
        assert f"| {r['seed']} | {ind:.2f}%" in text and f"{held:.2f}%" in text, r["run"]
        assert f"| {ind - held:.1f} |" in text, r["run"]


def test_recipes_readme_states_twice_the_rhvoice_clips():
    """The doubled-RHVoice table and its same-seed rerun of the recipe it changes are typed
    from transfer_rhvoice_x2.json (both arms trained in one session, on one machine)."""
    records = json.loads((RESULTS / "transfer_rhvoice_x2.json").read_text())
    assert all(r["validation_engine_mbrola"] is None for r in records)  # MBROLA in training
    rows = _assert_transfer_table(records, {"flite": 4828})
    assert {training for training, _ in rows} == {
        "medium + MBROLA + RHVoice, rerun",
        "medium + MBROLA + 2x RHVoice",
    }


def _assert_paired_steps(rows: dict, base: dict) -> None:
    """The README states each arm's paired steps over `base` (seed -> row of the recipe the arm
    changes): held-out accuracy and gap, mean +- interval and per seed, recomputed here."""
    text = (ROOT / "recipes" / "README.md").read_text()
    for key, runs in rows.items():
        held = [r["held_out_engine"]["accuracy_percent"]
                - base[r["seed"]]["held_out_engine"]["accuracy_percent"] for r in runs]  # fmt: skip
        stat = mean_interval(held)
        assert f"{stat.mean:+.2f} +- {stat.half_width:.2f} points" in text, (key, "held-out step")
        assert ", ".join(f"{d:+.2f}" for d in held) in text, (key, "steps per seed")
        stat = mean_interval([_value(r, "gap") - _value(base[r["seed"]], "gap") for r in runs])
        assert f"gap {stat.mean:+.2f} +- {stat.half_width:.2f}" in text, (key, "gap step")


def _arm(name: str, training: str) -> dict:
    """Seed -> row of one training arm of a committed transfer table."""
    records = json.loads((RESULTS / name).read_text())
    return {r["seed"]: r for r in records if r["training"] == training}


def test_recipes_readme_states_the_flite_levers_paired_with_their_baseline():
    """Label smoothing and Pico (transfer_flite_levers.json) change the doubled-RHVoice recipe
    (transfer_rhvoice_x2.json, same machine and seeds); the README states each arm's table row
    and its paired steps in held-out flite and in the gap, recomputed here."""
    records = json.loads((RESULTS / "transfer_flite_levers.json").read_text())
    rows = _assert_transfer_table(records, {"flite": 4828})
    _assert_paired_steps(rows, _arm("transfer_rhvoice_x2.json", "medium + MBROLA + 2x RHVoice"))


def test_recipes_readme_states_the_distilled_flite_recipes_paired_with_the_teachers_recipe():
    """Distillation (transfer_flite_distill.json) changes only the loss of the Pico recipe
    (its data, machine and seeds; the teachers are that recipe's runs): each arm's row and its
    paired steps over the Pico arm are in the README."""
    records = json.loads((RESULTS / "transfer_flite_distill.json").read_text())
    rows = _assert_transfer_table(records, {"flite": 4828})
    base = _arm("transfer_flite_levers.json", "medium + MBROLA + 2x RHVoice + Pico")
    _assert_paired_steps(rows, base)
    for r in records:  # the teachers the README names: seed s+1 mod 3, or all three runs
        seeds = range(3) if r["training"].endswith("ensemble") else [(r["seed"] + 1) % 3]
        want = [base[t]["run"] for t in seeds]
        assert r["teacher_runs"] == want, r["run"]
    text = (ROOT / "recipes" / "README.md").read_text()
    for runs in [*rows.values(), [base[seed] for seed in range(3)]]:  # Piper, heard by none
        piper = [r["unheard_engine_piper"]["accuracy_percent"] for r in runs]
        stated = f"{sum(piper) / 3:.2f}% (" + ", ".join(f"{a:.2f}%" for a in piper) + ")"
        assert stated in text, runs[0]["training"]


def test_recipes_readme_states_the_ensemble_distilled_recipe_over_five_seeds():
    """Seeds 3 and 4 (transfer_flite_distill_seeds34.json, same teachers, no paired run) join
    the ensemble arm's seeds 0-2: the README states their gaps and the five-seed statistics."""
    arm = "medium + MBROLA + 2x RHVoice + Pico, distilled from the three runs' ensemble"
    runs = sorted(_arm("transfer_flite_distill.json", arm).values(), key=lambda r: r["seed"])
    more = json.loads((RESULTS / "transfer_flite_distill_seeds34.json").read_text())
    assert [r["seed"] for r in more] == [3, 4] and {r["training"] for r in more} == {arm}
    assert all(r["teacher_runs"] == runs[0]["teacher_runs"] for r in more)
    runs += more
    text = (ROOT / "recipes" / "README.md").read_text()
    gaps = [_value(r, "gap") for r in runs]
    stat = mean_interval(gaps)
    assert (
        f"**{stat.mean:.1f} +- {stat.half_width:.1f}** ("
        + ", ".join(f"{g:.1f}" for g in gaps)
        + ")"
        in text
    )
    for field in ("held_out_engine", "in_domain"):
        stat = mean_interval([r[field]["accuracy_percent"] for r in runs])
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in text, field
    within = ("none", "one", "two", "three", "four", "all five")[sum(g <= 8 for g in gaps)]
    assert f"{within} seeds of five within 8" in text


def test_recipes_readme_states_the_ensemble_distilled_recipe_over_seven_seeds():
    """Seeds 5 and 6 (transfer_flite_distill_seeds56.json, same teachers) join seeds 0-4: the
    section and the transfer opening state the seven-seed gap and its upper end (README.md's
    table: test_readme_glance.py)."""
    arm = "medium + MBROLA + 2x RHVoice + Pico, distilled from the three runs' ensemble"
    runs = sorted(_arm("transfer_flite_distill.json", arm).values(), key=lambda r: r["seed"])
    runs += json.loads((RESULTS / "transfer_flite_distill_seeds34.json").read_text())
    more = json.loads((RESULTS / "transfer_flite_distill_seeds56.json").read_text())
    assert [r["seed"] for r in more] == [5, 6] and {r["training"] for r in more} == {arm}
    assert all(r["teacher_runs"] == runs[0]["teacher_runs"] for r in more)
    runs += more
    gaps = [_value(r, "gap") for r in runs]
    stat = mean_interval(gaps)
    text = " ".join((ROOT / "recipes" / "README.md").read_text().split())
    assert f"gaps of {gaps[5]:.1f} and {gaps[6]:.1f}" in text
    assert f"**{stat.mean:.2f} +- {stat.half_width:.2f}** (" + ", ".join(
        f"{g:.1f}" for g in gaps) + ")" in text  # fmt: skip
    for field in ("held_out_engine", "in_domain"):
        s = mean_interval([r[field]["accuracy_percent"] for r in runs])
        assert f"{s.mean:.2f} +- {s.half_width:.2f}%" in text, field
    within = sum(g <= 8 for g in gaps)
    upper = f"{stat.mean + stat.half_width:.1f}"
    assert f"four seeds of seven within 8, the mean {8 - stat.mean:.1f} inside" in text
    assert within == 4 and f"the interval's upper end {upper}" in text
    assert sorted(gaps[:3]) == sorted(gaps)[:3]  # "the three smallest gaps of the seven"
    short = f"**{stat.mean:.1f} +- {stat.half_width:.1f} on seven**"
    assert short in text
    later = mean_interval(gaps[3:])  # the seeds that chose nothing
    assert f"**{later.mean:.2f} +- {later.half_width:.2f}** (" + ", ".join(
        f"{g:.1f}" for g in gaps[3:]) + ")" in text and later.mean > 8  # fmt: skip
    assert f"give {later.mean:.1f} +- {later.half_width:.1f})" in text
    assert f"a margin of {8 - stat.mean:.1f} (seven seeds)" in text


def _flowing(text: str, start: str, end: str) -> str:
    """The text from `start` to `end`, its line breaks and runs of spaces made single spaces."""
    section = text[text.index(start) :]
    return " ".join(section[: section.index(end)].split())


KOKORO_SECTION = ("**Distillation with kokoro held out", "**A Japanese loanword accent")


def _kokoro_arms() -> tuple[dict, dict]:
    """Seed -> row of the kokoro-held-out Pico recipe (the teachers) and of its students."""
    base = _arm("transfer_kokoro_distill.json", "medium + MBROLA + 2x RHVoice + Pico")
    arm = "medium + MBROLA + 2x RHVoice + Pico, distilled from the three runs' ensemble"
    kd = _arm("transfer_kokoro_distill.json", arm)
    assert sorted(base) == sorted(kd) == [0, 1, 2]
    return base, kd


def _paired(base: dict, kd: dict, field: str) -> tuple[list[float], MeanInterval]:
    """Per-seed steps of `field` from `base` to `kd`, and their mean interval."""
    steps = [_value(kd[s], field) - _value(base[s], field) for s in range(3)]
    return steps, mean_interval(steps)


def _assert_arm_stated(runs: dict, section: str) -> None:
    """Seeds 0-2 of one arm: in-domain, held-out and Piper means +- intervals (0.01), the gap's
    (0.1) and the gap per seed are all in `section`."""
    for field in ("in_domain", "held_out_engine", "unheard_engine_piper"):
        stat = mean_interval([_value(runs[s], field) for s in range(3)])
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in section, field
    gaps = [_value(runs[s], "gap") for s in range(3)]
    stat = mean_interval(gaps)
    assert f"{stat.mean:.1f} +- {stat.half_width:.1f}" in section
    assert ", ".join(f"{g:.1f}" for g in gaps) in section


def test_recipes_readme_states_the_kokoro_distillation_paired_with_its_teachers():
    """The kokoro half of the ensemble distillation (transfer_kokoro_distill.json): its own
    section states each arm's accuracies and gaps and the paired steps (held-out, gap, Piper)
    with their per-seed values, recomputed here; the students' teachers and dose are the ones
    their configs recorded."""
    records = json.loads((RESULTS / "transfer_kokoro_distill.json").read_text())
    _assert_transfer_table(records, {"kokoro": 1653})
    base, kd = _kokoro_arms()
    for r in kd.values():
        assert r["teacher_runs"] == [base[t]["run"] for t in range(3)], r["run"]
        assert (r["distill_weight"], r["distill_temperature"]) == (0.5, 2.0)
    section = _flowing((ROOT / "recipes" / "README.md").read_text(), *KOKORO_SECTION)
    for runs in (base, kd):
        _assert_arm_stated(runs, section)
    (held_steps, held), (_, gap) = _paired(base, kd, "held_out_engine"), _paired(base, kd, "gap")
    seeds = ", ".join(f"{d:+.2f}" for d in held_steps)
    assert (
        f"{held.mean:+.2f} +- {held.half_width:.2f} points** ({seeds}; "
        f"gap {gap.mean:+.2f} +- {gap.half_width:.2f})" in section
    )
    piper_steps, piper = _paired(base, kd, "unheard_engine_piper")
    seeds = ", ".join(f"{d:+.2f}" for d in piper_steps)
    assert (
        f"{piper.mean:+.2f} +- {piper.half_width:.2f} points** paired ({seeds}), every seed alike"
        in section
    )


def test_recipes_readme_states_the_kokoro_distillations_recall_per_word():
    """Each command's held-out recall (mean of three seeds, both arms) is stated, and each word
    is said to rise on every seed, fall on every seed, or neither, as the seeds have it."""
    base, kd = _kokoro_arms()
    section = _flowing((ROOT / "recipes" / "README.md").read_text(), *KOKORO_SECTION)
    phrases = {
        "rise": r"stop [^;]*? rise on every seed",
        "fall": r"down [^;]*? falls on every seed",
        "mixed": r"yes [^;]*? do not move the same way",
    }
    said = {key: re.search(pattern, section).group(0) for key, pattern in phrases.items()}
    for word in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"):
        recall = [
            [runs[s]["held_out_commands_recall"][word] for s in range(3)] for runs in (base, kd)
        ]
        b, k = (sum(r) / 3 for r in recall)
        assert f"{word} {b:.1f}% -> {k:.1f}%" in section, word
        diffs = [after - before for before, after in zip(*recall)]
        where = next(key for key, phrase in said.items() if f"{word} {b:.1f}%" in phrase)
        rises, falls = all(d > 0 for d in diffs), all(d < 0 for d in diffs)
        assert where == ("rise" if rises else "fall" if falls else "mixed"), word


def test_the_transfer_opening_states_the_kokoro_distillation():
    """The transfer section's opening gives the section's gaps (one decimal)."""
    base, kd = _kokoro_arms()
    text = (ROOT / "recipes" / "README.md").read_text()
    opening = _flowing(text, "## Transfer to an unheard TTS engine", "| held-out engine |")
    g_kd, g_base = (mean_interval([_value(r[s], "gap") for s in range(3)]) for r in (kd, base))
    _, gap = _paired(base, kd, "gap")
    assert (
        f"leaves its gap at {g_kd.mean:.1f} +- {g_kd.half_width:.1f} ({g_base.mean:.1f} +- "
        f"{g_base.half_width:.1f} without, {gap.mean:+.1f} +- {gap.half_width:.1f} paired"
        in opening
    )


def test_recipes_readme_states_the_kokoro_students_over_five_seeds():
    """Seeds 3 and 4 (transfer_kokoro_distill_seeds34.json, same teachers, no paired baseline)
    join the students' seeds 0-2: the section states their gaps and the five-seed statistics."""
    base, kd = _kokoro_arms()
    more = json.loads((RESULTS / "transfer_kokoro_distill_seeds34.json").read_text())
    assert [r["seed"] for r in more] == [3, 4]
    assert all(r["training"] == kd[0]["training"] for r in more)
    assert all(r["teacher_runs"] == kd[0]["teacher_runs"] for r in more)
    runs = [kd[s] for s in range(3)] + more
    section = _flowing((ROOT / "recipes" / "README.md").read_text(), *KOKORO_SECTION)
    gaps = [_value(r, "gap") for r in runs]
    stat = mean_interval(gaps)
    five = ", ".join(f"{g:.1f}" for g in gaps)
    assert f"**{stat.mean:.1f} +- {stat.half_width:.1f}** ({five})" in section
    assert f"gaps of {gaps[3]:.1f} and {gaps[4]:.1f}" in section
    for field in ("held_out_engine", "in_domain", "unheard_engine_piper"):
        stat = mean_interval([_value(r, field) for r in runs])
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in section, field
