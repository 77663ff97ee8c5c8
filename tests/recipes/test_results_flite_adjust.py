"""recipes/README.md's unknown-class offset for flite (`kws logit-adjust`), recomputed from
recipes/results/transfer_flite_logit_adjust.json: the table, the narrowing's two parts and the
price in unknown words (README.md's table: test_readme_glance.py). The runs' numbers before the
offset are those the distillation results already hold."""

from __future__ import annotations

import json

from kws.stats import mean_interval
from tests.recipes.test_results import RESULTS, ROOT, _arm, _flowing

SECTION = (
    "**An unknown-class offset chosen on an unheard engine",
    "**Distillation with kokoro held out",
)
PICO = "medium + MBROLA + 2x RHVoice + Pico"
DISTILLED = f"{PICO}, distilled from the three runs' ensemble"


def _rows(arm: str) -> list[dict]:
    rows = json.loads((RESULTS / "transfer_flite_logit_adjust.json").read_text())
    return sorted((r for r in rows if r["training"] == arm), key=lambda r: r["seed"])


def _acc(row, field, when):
    return row[field][when]["accuracy_percent"]


def _stat(values) -> str:
    s = mean_interval(values)
    return f"{s.mean:.2f} +- {s.half_width:.2f}"


def test_rows_are_consistent_and_match_the_distillation_results():
    distilled = {r["seed"]: r for r in json.loads(
        (RESULTS / "transfer_flite_distill_seeds34.json").read_text()
    ) + json.loads((RESULTS / "transfer_flite_distill_seeds56.json").read_text())}  # fmt: skip
    distilled.update(
        {r["seed"]: r for r in _arm("transfer_flite_distill.json", DISTILLED).values()}
    )
    for row in _rows(DISTILLED) + _rows(PICO):
        for when in ("before", "at_offset"):
            gap = _acc(row, "in_domain", when) - _acc(row, "held_out_engine", when)
            assert abs(row[f"gap_{when}"] - gap) < 0.006
            assert row["in_domain"][when]["examples"] == 1244
            assert row["held_out_engine"][when]["examples"] == 4828
        assert row["validation_engine_piper"]["before"][1] == 5250
    for row in _rows(DISTILLED):
        old = distilled[row["seed"]]
        assert _acc(row, "in_domain", "before") == old["in_domain"]["accuracy_percent"]
        assert _acc(row, "held_out_engine", "before") == old["held_out_engine"]["accuracy_percent"]
    assert [r["seed"] for r in _rows(DISTILLED)] == list(range(7))
    assert [r["seed"] for r in _rows(PICO)] == [0, 1, 2]


def test_the_section_states_the_table_and_its_reading():
    text = " ".join((ROOT / "recipes" / "README.md").read_text().split())
    section = _flowing((ROOT / "recipes" / "README.md").read_text(), *SECTION)
    for arm, name in (
        (PICO, "the Pico recipe (3 seeds)"),
        (DISTILLED, "the same, distilled from the three runs' ensemble (7 seeds)"),
    ):
        rows = _rows(arm)
        piper = [
            100 * r["validation_engine_piper"]["at_offset"][0] / 5250
            - 100 * r["validation_engine_piper"]["before"][0] / 5250
            for r in rows
        ]
        gaps = [r["gap_at_offset"] for r in rows]
        cells = [
            name, ", ".join(f"{r['unknown_logit_offset']:g}" for r in rows), f"+{_stat(piper)}",
            f"{mean_interval([_acc(r, 'in_domain', 'before') for r in rows]).mean:.2f} -> "
            f"{_stat([_acc(r, 'in_domain', 'at_offset') for r in rows])}%",
            f"{mean_interval([_acc(r, 'held_out_engine', 'before') for r in rows]).mean:.2f} -> "
            f"{_stat([_acc(r, 'held_out_engine', 'at_offset') for r in rows])}%",
            f"{mean_interval([r['gap_before'] for r in rows]).mean:.2f} -> **{_stat(gaps)}**",
            ", ".join(f"{g:.1f}" for g in gaps),
        ]  # fmt: skip
        assert "| " + " | ".join(cells) + " |" in section, arm
        stat = mean_interval(gaps)
        assert max(gaps) <= 8 and stat.mean + stat.half_width <= 8
        assert f"**{_stat(gaps)}**" in text.split("## Transfer to an unheard TTS engine")[1][:800]
    rows = _rows(DISTILLED)
    uppers = [mean_interval([r["gap_at_offset"] for r in _rows(a)]) for a in (PICO, DISTILLED)]
    assert (
        "upper end (" + " and ".join(f"{u.mean + u.half_width:.1f}" for u in uppers) + ")"
        in section
    )
    assert f"the largest gap {max(r['gap_at_offset'] for r in _rows(PICO) + rows):.1f}" in section
    steps = {
        "narrowing": [r["gap_at_offset"] - r["gap_before"] for r in rows],
        "held-out": [_acc(r, "held_out_engine", "at_offset") - _acc(r, "held_out_engine", "before")
                     for r in rows],
        "in-domain": [_acc(r, "in_domain", "at_offset") - _acc(r, "in_domain", "before")
                      for r in rows],
    }  # fmt: skip
    assert f"(-{_stat(steps['narrowing'])[1:]} points over the seven distilled seeds)" in section
    assert f"gives +{_stat(steps['held-out'])} and in-domain falling the other -" in section
    assert f"the other {_stat(steps['in-domain'])}" in section
    unadjusted = [_acc(r, "in_domain", "before") - _acc(r, "held_out_engine", "at_offset")
                  for r in rows]  # fmt: skip
    assert (
        f"still {mean_interval(unadjusted).mean:.1f} points below on average (at most "
        f"{max(unadjusted):.1f} on a seed)" in section
    )

    def recall(arm, field, when, key="unknown_recall_percent"):
        return [r[field][when][key] for r in _rows(arm)]

    assert (f"reject {_stat(recall(DISTILLED, 'in_domain', 'at_offset'))}% of them "
            f"({_stat(recall(DISTILLED, 'in_domain', 'before'))}% as is; the Pico recipe's runs "
            f"{_stat(recall(PICO, 'in_domain', 'at_offset'))}%, from "
            f"{_stat(recall(PICO, 'in_domain', 'before'))}%)") in section  # fmt: skip
    commands = "mean_command_recall_percent"
    assert (
        f"rises to {_stat(recall(DISTILLED, 'in_domain', 'at_offset', commands))}% "
        f"({_stat(recall(DISTILLED, 'in_domain', 'before', commands))}%)"
    ) in section
    flite = [
        mean_interval(recall(DISTILLED, "held_out_engine", w, k)).mean
        for k in (commands, "unknown_recall_percent")
        for w in ("before", "at_offset")
    ]
    assert ("recall {:.2f} -> {:.2f}% and unknown words {:.2f} -> {:.2f}%".format(*flite)
            in section)  # fmt: skip


def test_the_stream_numbers_are_the_stream_evaluations():
    """The 30-minute streams of seed 0 as trained and adjusted
    (transfer_flite_logit_adjust_stream.json, `kws stream-eval` output)."""
    section = _flowing((ROOT / "recipes" / "README.md").read_text(), *SECTION)
    as_is, adjusted = json.loads(
        (RESULTS / "transfer_flite_logit_adjust_stream.json").read_text())  # fmt: skip
    assert as_is["run"] == "mbrh2picoekd_no_flite_s0"
    assert adjusted["run"] == "adj_mbrh2picoekd_no_flite_s0"
    assert as_is["stream"] == adjusted["stream"] and as_is["duration_s"] == 1800
    a, b = as_is["scores"], adjusted["scores"]
    assert f"{a['keyword_words']} command words among {a['unknown_words']} unknown" in section
    assert (f"misses {b['miss_rate_percent']:.1f}% of the commands against "
            f"{a['miss_rate_percent']:.1f}% and fires falsely {b['false_accepts_per_hour']:.0f} "
            f"times an hour against {a['false_accepts_per_hour']:.0f} ({b['false_accepts']} and "
            f"{a['false_accepts']} false accepts)") in section  # fmt: skip
    sweep = {name: {p["threshold"]: p for p in run["sweep"]}
             for name, run in (("as_is", as_is), ("adjusted", adjusted))}  # fmt: skip

    def point(name, threshold):
        p = sweep[name][threshold]
        return p["miss_rate_percent"], p["false_accepts_per_hour"]

    (m1, f1), (m0, f0) = point("adjusted", 0.9), point("as_is", 0.75)
    assert f1 == f0 == 50 and m1 > m0
    assert f"{m1:.1f}% at 50 per hour (threshold 0.9) against {m0:.1f}% (0.75)" in section
    (m1, f1), (m0, f0) = point("adjusted", 0.95), point("as_is", 0.85)
    assert m1 > m0 and abs(f1 - f0) <= 2
    assert f"{m1:.1f}% at {f1:.0f} per hour (0.95) against {m0:.1f}% at {f0:.0f} (0.85)" in section
