"""recipes/README.md's tempo check of held-out Kokoro, recomputed from
recipes/results/transfer_kokoro_tempo.json."""

from __future__ import annotations

import json

from kws.stats import mean_interval
from tests.recipes.test_results import RESULTS, ROOT

STYLES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")


def _commands(table: dict) -> float:
    right = sum(table[s]["commands"][0] for s in STYLES)
    return 100 * right / sum(table[s]["commands"][1] for s in STYLES)


def _lengths(table: dict) -> str:
    female = [table[s]["command_ms"] for s in STYLES[1:]]
    return f"{table['jm_kumo']['command_ms']:.0f} / {min(female):.0f}-{max(female):.0f} ms"


def test_the_tempo_table_is_the_json():
    record = json.loads((RESULTS / "transfer_kokoro_tempo.json").read_text())
    text = " ".join((ROOT / "recipes" / "README.md").read_text().split())
    kokoro = record["kokoro"]
    assert {sum(t[s]["commands"][1] for s in STYLES) for r in kokoro.values() for t in r} == {1101}
    base = [_commands(t) for t in kokoro["1"]]
    for rate in ("1", "1.2", "0.85"):
        scores = [_commands(t) for t in kokoro[rate]]
        stat = mean_interval(scores)
        assert f"{stat.mean:.2f} +- {stat.half_width:.2f}%" in text, rate
        assert _lengths(kokoro[rate][0]) in text, rate
        assert all(_lengths(t) == _lengths(kokoro[rate][0]) for t in kokoro[rate])
        if rate != "1":
            step = mean_interval([a - b for a, b in zip(scores, base)])
            assert f"{step.mean:.2f} +- {step.half_width:.2f}" in text, rate
    slower = [a - b for a, b in zip([_commands(t) for t in kokoro["0.85"]], base)]
    assert all(d < 0 for d in slower)  # "on every seed"
    festival = {
        rate: 100 * sum(v["commands"][0] for v in tab.values()) / 3168
        for rate, tab in record["festival_seed0"].items()
    }
    assert all(sum(v["commands"][1] for v in t.values()) == 3168
               for t in record["festival_seed0"].values())  # fmt: skip
    assert (
        f"({festival['1']:.2f}% -> {festival['1.2']:.2f}% and {festival['0.85']:.2f}%, "
        "n = 3,168)" in text
    )
    lost = (festival["1"] - festival["1.2"], festival["1"] - festival["0.85"])
    assert f"lose {lost[0]:.1f} points at x1.2 and {lost[1]:.1f} at x0.85" in text
    fest_ms = [t["command_ms"] for t in record["festival_seed0"]["1"].values()]
    assert f"against {min(fest_ms):.0f}-{max(fest_ms):.0f} ms for festival's voices" in text
