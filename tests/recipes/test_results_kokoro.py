"""recipes/README.md's kokoro sections of this round, recomputed from recipes/results: the
katakana arm (transfer_kokoro_katakana.json), the two checks that need no training
(transfer_kokoro_shift.json) and the speech-embedding teacher and its students
(transfer_kokoro_embedding_teacher.json, transfer_kokoro_embedding.json) and its students with
hints (transfer_kokoro_embedding.json, transfer_kokoro_hints_fit.json)."""

from __future__ import annotations

import json
import re

from kws.stats import mean_interval
from tests.recipes.test_results import (
    RESULTS,
    ROOT,
    _arm,
    _assert_arm_stated,
    _assert_transfer_table,
    _flowing,
    _paired,
    _value,
)

KATAKANA_SECTION = ("**A Japanese loanword accent", "**Two checks that need no training")
SHIFT_SECTION = ("**Two checks that need no training", "**A teacher pretrained on real speech")
EMBEDDING_SECTION = ("**A teacher pretrained on real speech", "**Hints from the embedding itself")
HINT_SECTION = ("**Hints from the embedding itself", "**Every lever at once")
PICO = "medium + MBROLA + 2x RHVoice + Pico"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def _katakana_arms() -> tuple[dict, dict]:
    base = _arm("transfer_kokoro_katakana.json", PICO)
    kata = _arm("transfer_kokoro_katakana.json", f"{PICO} + 4,389 katakana clips")
    assert sorted(base) == sorted(kata) == [0, 1, 2]
    return base, kata


def _section(bounds: tuple[str, str]) -> str:
    return _flowing((ROOT / "recipes" / "README.md").read_text(), *bounds)


def test_the_katakana_arm_is_stated_paired_with_the_pico_recipe():
    records = json.loads((RESULTS / "transfer_kokoro_katakana.json").read_text())
    _assert_transfer_table(records, {"kokoro": 1653})
    base, kata = _katakana_arms()
    baseline = _arm("transfer_kokoro_distill.json", PICO)  # the same three runs, reported there
    assert [base[s] for s in range(3)] == [baseline[s] for s in range(3)]
    section = _section(KATAKANA_SECTION)
    for runs in (base, kata):
        _assert_arm_stated(runs, section)
    gap_kata = mean_interval([_value(kata[s], "gap") for s in range(3)])
    assert f"**{gap_kata.mean:.1f} +- {gap_kata.half_width:.1f}** | " in section  # in bold
    (held_steps, held), (_, gap) = (
        _paired(base, kata, "held_out_engine"),
        _paired(base, kata, "gap"),
    )
    seeds = ", ".join(f"{d:+.2f}" for d in held_steps)
    assert (
        f"{held.mean:+.2f} +- {held.half_width:.2f} points** ({seeds}; "
        f"gap {gap.mean:+.2f} +- {gap.half_width:.2f})" in section
    )
    _, ind = _paired(base, kata, "in_domain")
    assert f"in-domain {ind.mean:+.2f} +- {ind.half_width:.2f}" in section
    piper_steps, piper = _paired(base, kata, "unheard_engine_piper")
    assert all(d > 0 for d in piper_steps) and "rises on every seed" in section
    seeds = ", ".join(f"{d:+.2f}" for d in piper_steps)
    assert f"**{piper.mean:+.2f} +- {piper.half_width:.2f}** ({seeds})" in section


def test_every_commands_recall_is_stated_with_how_its_seeds_move():
    """Each command's recall (both arms, mean of three seeds) is stated once, among the words
    that rise on every seed, fall on every seed or do neither, as the seeds say."""
    base, kata = _katakana_arms()
    section = _section(KATAKANA_SECTION)
    said = {
        "rise": re.search(r"no [^;]*? rise on every seed", section).group(0),
        "mixed": re.search(r"yes [^;]*? do not move the same way on every seed", section).group(0),
        "fall": re.search(r"and off [^;]*? falls on every seed", section).group(0),
    }
    for word in (*WORDS, "_unknown_"):
        recall = [[runs[s]["held_out_commands_recall"][word] for s in range(3)]
                  for runs in (base, kata)]  # fmt: skip
        b, k = (sum(r) / 3 for r in recall)
        name = "unknown words" if word == "_unknown_" else word
        assert f"{name} {b:.1f}% -> {k:.1f}%" in section, word
        if word == "_unknown_":
            continue
        diffs = [after - before for before, after in zip(*recall, strict=True)]
        rises, falls = all(d > 0 for d in diffs), all(d < 0 for d in diffs)
        where = [key for key, phrase in said.items() if f"{word} {b:.1f}%" in phrase]
        assert where == ["rise" if rises else "fall" if falls else "mixed"], word


def _percent(pair: list[int]) -> float:
    return 100.0 * pair[0] / pair[1]


def test_the_shift_checks_are_stated_per_arm():
    """The offsets Piper chose, in-domain and held-out as is and at the offset with the paired
    step, the gaps left at the offset and with AdaBN, per arm, as one table row each; the
    runs' scores as is are the ones their own evaluations reported
    (transfer_kokoro_distill*.json)."""
    shift = json.loads((RESULTS / "transfer_kokoro_shift.json").read_text())
    assert (shift["held_out_engine"], shift["validation_engine"]) == ("kokoro", "piper")
    reported = {}
    for name in ("transfer_kokoro_distill.json", "transfer_kokoro_distill_seeds34.json"):
        reported |= {r["run"]: r for r in json.loads((RESULTS / name).read_text())}
    section = _section(SHIFT_SECTION)
    for arm, seeds in zip(shift["arms"], (3, 5), strict=True):
        rows = arm["rows"]
        assert len(rows) == seeds
        for row in rows:
            known = reported[row["run"]]
            assert round(_percent(row["held_out"]), 2) == _value(known, "held_out_engine")
            assert round(_percent(row["in_domain"]), 2) == _value(known, "in_domain")
            assert row["held_out"][1] == 1653 and row["validation"][1] == 5250
        offsets = [row["offset"] for row in rows]
        cells = ["2.5 each" if set(offsets) == {2.5} else ", ".join(f"{o:g}" for o in offsets)]
        for what in ("in_domain", "held_out"):
            was, now = _stat(rows, what), _stat(rows, f"{what}_at_offset")
            step = _stat(rows, f"{what}_at_offset", what)
            cells.append(f"{was.mean:.2f}% -> {now.mean:.2f}% ({step.mean:+.2f} +- "
                         f"{step.half_width:.2f})")  # fmt: skip
        cells.append(_gap(rows, "in_domain_at_offset", "held_out_at_offset"))
        adabn, step = _stat(rows, "held_out_adabn"), _stat(rows, "held_out_adabn", "held_out")
        cells.append(f"{adabn.mean:.2f}% ({step.mean:+.2f} +- {step.half_width:.2f})")
        cells.append(_gap(rows, "in_domain", "held_out_adabn"))
        assert " | ".join(cells) + " |" in section, arm["training"]
        piper = _stat(rows, "validation_at_offset", "validation")
        assert f"{piper.mean:.1f} +- {piper.half_width:.1f}" in section


def _stat(rows: list[dict], key: str, base: str | None = None):
    """Mean interval over runs of a score (percent), or of its step from `base` (points)."""
    return mean_interval([_percent(r[key]) - (_percent(r[base]) if base else 0.0) for r in rows])


def _gap(rows: list[dict], in_domain: str, held_out: str) -> str:
    gap = mean_interval([_percent(r[in_domain]) - _percent(r[held_out]) for r in rows])
    return f"{gap.mean:.1f} +- {gap.half_width:.1f}"


def test_the_opening_states_the_katakana_and_shift_gaps():
    base, kata = _katakana_arms()
    text = (ROOT / "recipes" / "README.md").read_text()
    opening = _flowing(text, "## Transfer to an unheard TTS engine", "| held-out engine |")
    was = mean_interval([_value(base[s], "gap") for s in range(3)])
    gap = mean_interval([_value(kata[s], "gap") for s in range(3)])
    _, step = _paired(base, kata, "gap")
    assert f"{was.mean:.1f} +- {was.half_width:.1f})" in opening
    assert (f"leaves {gap.mean:.1f} +- {gap.half_width:.1f} ({step.mean:+.1f} +- "
            f"{step.half_width:.1f} paired, within the noise)") in opening  # fmt: skip
    assert abs(step.mean) < step.half_width  # "within the noise"
    shift = json.loads((RESULTS / "transfer_kokoro_shift.json").read_text())
    rows = [arm["rows"] for arm in shift["arms"]]
    offset = [_gap(r, "in_domain_at_offset", "held_out_at_offset").split()[0] for r in rows]
    adabn = [_gap(r, "in_domain", "held_out_adabn").split()[0] for r in rows]
    assert f"leaves {offset[0]} and {offset[1]} points" in opening
    assert f"it sees the test set) {adabn[0]} and {adabn[1]}" in opening


def test_the_katakana_clips_heard_by_the_pico_recipe_are_stated():
    """How far katakana is from what the Pico recipe knows: its accuracy on the katakana set
    and the commands it names at most 0.3% of (transfer_katakana_unheard.json)."""
    row = json.loads((RESULTS / "transfer_katakana_unheard.json").read_text())
    kokoro = _arm("transfer_kokoro_katakana.json", PICO)[0]
    assert row["run"] == kokoro["run"]
    section = _section(KATAKANA_SECTION)
    n = row["held_out_engine"]["examples"]
    assert (
        f"{_value(row, 'held_out_engine'):.2f}% [" in section and f"the {n:,} katakana" in section
    )
    assert f"({_value(kokoro, 'held_out_engine'):.2f}% of kokoro's" in section
    for recalls, engine in ((row, "katakana"), (kokoro, "kokoro")):
        mean = sum(recalls["held_out_commands_recall"][w] for w in WORDS) / len(WORDS)
        assert f"{mean:.1f}%" in section, engine  # the commands' mean per-word recall
    lost = [w for w in WORDS if row["held_out_commands_recall"][w] <= 0.3]
    worst = [row["held_out_commands_recall"][w] for w in lost]
    said = f"{', '.join(lost[:-1])} and {lost[-1]} at {min(worst):.1f}-{max(worst):.1f}%,"
    assert said in section
    assert f"{sum(row['called_unknown'][w] for w in lost):,} of their " in section
    assert f"{sum(row['clips_per_command'][w] for w in lost):,} clips called unknown" in section


def test_the_share_the_offset_closes_is_stated():
    shift = json.loads((RESULTS / "transfer_kokoro_shift.json").read_text())
    section = _section(SHIFT_SECTION)
    for arm in shift["arms"]:
        rows = arm["rows"]
        before = _gap(rows, "in_domain", "held_out").split()[0]
        said = f"{before} -> {_gap(rows, 'in_domain_at_offset', 'held_out_at_offset').split()[0]}"
        assert said in section
        adabn = _gap(rows, "in_domain", "held_out_adabn").split()[0]
        assert f"gaps {adabn}" in section or f"and {adabn})" in section


def test_the_katakana_clips_with_flite_held_out_are_stated_paired():
    """transfer_flite_katakana.json: its baseline is the flite-held-out Pico recipe reported in
    transfer_flite_levers.json, and the paired steps are stated."""
    records = json.loads((RESULTS / "transfer_flite_katakana.json").read_text())
    _assert_transfer_table(records, {"flite": 4828})
    base = _arm("transfer_flite_katakana.json", PICO)
    kata = _arm("transfer_flite_katakana.json", f"{PICO} + 4,389 katakana clips")
    levers = _arm("transfer_flite_levers.json", PICO)
    for s in range(3):
        assert base[s] == levers[s]
    section = _section(KATAKANA_SECTION)
    for runs in (base, kata):
        stat = mean_interval([_value(runs[s], "unheard_engine_piper") for s in range(3)])
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in section
    labels = {"held_out_engine": "Held-out flite", "gap": "gap", "in_domain": "in-domain",
              "unheard_engine_piper": "Piper"}  # fmt: skip
    for field, label in labels.items():
        steps, stat = _paired(base, kata, field)
        bold = "**" if field == "unheard_engine_piper" else ""
        said = f"{label} {bold}{stat.mean:+.2f} +- {stat.half_width:.2f}"
        if field in ("held_out_engine", "unheard_engine_piper"):
            said += ("** " if field == "unheard_engine_piper" else " points paired ") + (
                "(" + ", ".join(f"{d:+.2f}" for d in steps) + ")"
            )
        assert said in section, field
    piper_steps, _ = _paired(base, kata, "unheard_engine_piper")
    assert sum(d < 0 for d in piper_steps) == 2 and "falls on two seeds of three" in section


def test_the_opening_states_the_flite_side_and_the_gaps_before():
    base = _arm("transfer_flite_katakana.json", PICO)
    kata = _arm("transfer_flite_katakana.json", f"{PICO} + 4,389 katakana clips")
    text = (ROOT / "recipes" / "README.md").read_text()
    opening = _flowing(text, "## Transfer to an unheard TTS engine", "| held-out engine |")
    was, now = (mean_interval([_value(r[s], "gap") for s in range(3)]) for r in (base, kata))
    (_, step), (_, piper) = _paired(base, kata, "gap"), _paired(base, kata, "unheard_engine_piper")
    shift = json.loads((RESULTS / "transfer_kokoro_shift.json").read_text())
    before = [_gap(arm["rows"], "in_domain", "held_out").split()[0] for arm in shift["arms"]]
    assert (
        f"flite's gap at {now.mean:.1f} +- {now.half_width:.1f} ({was.mean:.1f} +- "
        f"{was.half_width:.1f} without, {step.mean:+.1f} +- {step.half_width:.1f} paired)"
        in opening
    )
    assert f"falls on two seeds of three ({piper.mean:+.1f} +- {piper.half_width:.1f})" in opening
    assert f"(from {before[0]} and, over five distilled seeds, {before[1]})" in opening


EMBEDDING_ARMS = (
    PICO,
    f"{PICO}, distilled from the ensemble of its three runs (online)",
    f"{PICO}, distilled from the speech-embedding teacher fused with those runs (offline)",
    f"{PICO}, the same teacher, distill_weight 1",
    f"{PICO}, the same teacher with hints from its embedding (hint_weight 1)",
)


def test_the_speech_embedding_teacher_is_stated_with_its_gaps():
    """Every score of the teacher run again, with its Wilson interval, each teacher's gap, and
    the scores of the teacher that taught."""
    from kws.stats import format_accuracy

    record = json.loads((RESULTS / "transfer_kokoro_embedding_teacher.json").read_text())
    section = _section(EMBEDDING_SECTION)
    rerun = record["rerun_one_thread"]
    for teacher in ("head", "runs", "fused"):
        scores = rerun[teacher]
        for correct, n in scores.values():
            stated = format_accuracy(correct, n).split(" (n=")[0]  # "84.07% [82.2-85.8]"
            assert stated in section, (teacher, stated)
        gap = 100 * (scores["testing"][0] / scores["testing"][1]
                     - scores["kokoro"][0] / scores["kokoro"][1])  # fmt: skip
        assert f"| {gap:.1f} |" in section, teacher
    taught = [f"{100 * c / n:.2f}%" for c, n in record["teacher_that_taught"]["fused"].values()]
    assert f"scored {', '.join(taught[:-1])} and {taught[-1]} on the same sets" in section
    proto = record["prototype_head_weights"]
    validation = [f"{proto[w]['validation']:.2f}%" for w in ("0.3", "0.5")]
    assert f"({validation[0]} against {validation[1]}" in section
    kokoro = ", ".join(f"{proto[w]['kokoro']:.2f}%" for w in ("0.3", "0.5", "0.7"))
    assert f"(kokoro {kokoro})" in section
    assert f"{record['embedding_parameters']:,} parameters" in section


def test_the_speech_embedding_students_are_stated_paired():
    """transfer_kokoro_embedding.json: four arms on seeds 0-2 (the first the Pico recipe's rows
    of the katakana table), each stated, the students' targets and dose those their
    configs recorded, and the paired steps recomputed."""
    records = json.loads((RESULTS / "transfer_kokoro_embedding.json").read_text())
    _assert_transfer_table(records, {"kokoro": 1653})
    base, ekd, soft, pure, _ = (_arm("transfer_kokoro_embedding.json", a) for a in EMBEDDING_ARMS)
    assert base == _arm("transfer_kokoro_katakana.json", PICO)  # the same three runs
    for runs, weight in ((soft, 0.5), (pure, 1.0)):
        for r in runs.values():
            assert (r["soft_targets"], r["distill_weight"]) == ("kokoro_fused.npz", weight)
            assert r["distill_temperature"] == 2.0
    section = _section(EMBEDDING_SECTION)
    for runs in (base, ekd, soft, pure):
        _assert_arm_stated(runs, section)

    def step(a, b, field):
        steps, stat = _paired(a, b, field)
        return f"{stat.mean:+.2f} +- {stat.half_width:.2f}", ", ".join(f"{d:+.2f}" for d in steps)

    held, seeds = step(base, soft, "held_out_engine")
    assert f"**{held} points** paired ({seeds}; gap {step(base, soft, 'gap')[0]})" in section
    piper, seeds = step(base, soft, "unheard_engine_piper")
    assert f"Piper {piper} ({seeds})" in section
    held, seeds = step(ekd, soft, "held_out_engine")
    assert f"kokoro {held} ({seeds}), Piper {step(ekd, soft, 'unheard_engine_piper')[0]}" in section
    assert f"in-domain {step(ekd, soft, 'in_domain')[0]}" in section
    held, seeds = step(ekd, pure, "held_out_engine")
    assert f"kokoro {held} against the ensemble's students ({seeds})" in section
    assert f"Piper {step(ekd, pure, 'unheard_engine_piper')[0]}" in section


def test_the_opening_states_the_teacher_and_its_students():
    record = json.loads((RESULTS / "transfer_kokoro_embedding_teacher.json").read_text())
    fused, head = record["rerun_one_thread"]["fused"], record["rerun_one_thread"]["head"]
    soft = _arm("transfer_kokoro_embedding.json", EMBEDDING_ARMS[2])
    gap = mean_interval([_value(soft[s], "gap") for s in range(3)])
    head_gap = 100 * (
        head["testing"][0] / head["testing"][1] - head["kokoro"][0] / head["kokoro"][1]
    )
    taught = record["teacher_that_taught"]["fused"]
    taught_gap = 100 * (taught["testing"][0] / taught["testing"][1]
                        - taught["kokoro"][0] / taught["kokoro"][1])  # fmt: skip
    assert taught["kokoro"] == fused["kokoro"]  # the rerun names the same kokoro clips right
    facts = (f"{100 * fused['kokoro'][0] / fused['kokoro'][1]:.2f}%", f"gap {taught_gap:.1f};",
             f"{head_gap:.1f} at",
             f"{100 * head['testing'][0] / head['testing'][1]:.2f}% in-domain",
             f"{gap.mean:.1f} +- {gap.half_width:.1f}")  # fmt: skip
    opening = _section(("## Transfer to an unheard TTS engine", "| held-out engine |"))
    for fact in facts:
        assert fact in opening, fact


def _step(a: dict, b: dict, field: str) -> tuple[str, str]:
    steps, stat = _paired(a, b, field)
    return f"{stat.mean:+.2f} +- {stat.half_width:.2f}", ", ".join(f"{d:+.2f}" for d in steps)


def test_the_hinted_students_are_stated_paired_with_their_embedding_fit():
    """The fifth arm: the same logits as the soft-target students plus hint_weight 1, as its
    configs recorded; its row, the paired steps, and the embedding fit's means."""
    base, _, soft, _, hint = (_arm("transfer_kokoro_embedding.json", a) for a in EMBEDDING_ARMS)
    for r in hint.values():
        assert (r["soft_targets"], r["hint_weight"]) == ("kokoro_fused_emb.npz", 1.0)
        assert (r["distill_weight"], r["distill_temperature"]) == (0.5, 2.0)
    section = _section(HINT_SECTION)
    _assert_arm_stated(soft, section)
    _assert_arm_stated(hint, section)
    held, seeds = _step(soft, hint, "held_out_engine")
    assert f"**{held} points** paired ({seeds}; gap {_step(soft, hint, 'gap')[0]})" in section
    assert f"Piper {_step(soft, hint, 'unheard_engine_piper')[0]}" in section
    assert f"in-domain {_step(soft, hint, 'in_domain')[0]}" in section
    held, seeds = _step(base, hint, "held_out_engine")
    assert f"kokoro {held} ({seeds}) over the Pico recipe" in section
    fits = json.loads((RESULTS / "transfer_kokoro_hints_fit.json").read_text())
    means = {}
    for name, runs, maps in (("base", base, {"least_squares"}), ("soft", soft, {"least_squares"}),
                             ("hint", hint, {"least_squares", "hint_projector"})):  # fmt: skip
        rows = [f for f in fits if f["run"] in {runs[s]["run"] for s in range(3)}]
        assert len(rows) == 3 and all(set(f) - {"run"} == maps for f in rows)
        for how in maps:
            means[name, how] = [sum(f[how][k] for f in rows) / 3
                                for k in ("training", "testing", "held_out")]  # fmt: skip
            assert f"| {' | '.join(f'{m:.3f}' for m in means[name, how])}" in section, name
    kokoro = ", ".join(f"{f['least_squares']['held_out']:.3f}" for f in fits
                       if f["run"].startswith("hint_"))  # fmt: skip
    assert f"({kokoro})" in section
    ratios = [h / s for h, s in zip(means["hint", "least_squares"], means["soft", "least_squares"])]
    assert all(abs(r - 1.6) < 0.05 for r in ratios)  # "about 1.6 times"
    held = means["hint", "least_squares"][2], means["soft", "least_squares"][2]
    assert f"({held[0]:.3f} against {held[1]:.3f})" in section
    assert 0.35 < means["hint", "least_squares"][0] < 0.4  # "a little under two-fifths"
    assert 0.225 < held[0] < 0.275  # "a quarter"


def test_the_opening_states_the_hinted_gap():
    hint = _arm("transfer_kokoro_embedding.json", EMBEDDING_ARMS[4])
    gap = mean_interval([_value(hint[s], "gap") for s in range(3)])
    soft = _arm("transfer_kokoro_embedding.json", EMBEDDING_ARMS[2])
    paired = _step(soft, hint, "gap")[0]
    opening = _section(("## Transfer to an unheard TTS engine", "| held-out engine |"))
    for fact in (f"{gap.mean:.1f} +- {gap.half_width:.1f} when", f"{paired} paired, no step",
                 "about 1.6 times as much"):  # fmt: skip
        assert fact in opening, fact
