"""recipes/README.md's leave-one-engine-out table of the quickstart recipe, recomputed from
recipes/results/quickstart_leave_one_engine_out.json (every number, and "none within 8")."""

from __future__ import annotations

import json

from kws.stats import mean_interval
from tests.recipes.test_results import RESULTS, ROOT

NAMES = {None: "none", "espeak": "espeak-ng", "festival": "festival", "flite": "flite",
         "kokoro": "Kokoro"}  # fmt: skip


def _percent(part: dict) -> float:
    return 100 * part["correct"] / part["examples"]


def test_the_table_is_the_json():
    rows = json.loads((RESULTS / "quickstart_leave_one_engine_out.json").read_text())["rows"]
    text = (ROOT / "recipes" / "README.md").read_text()
    gaps = {}
    for engine, name in NAMES.items():
        arm = sorted((r for r in rows if r["held_out"] == engine), key=lambda r: r["seed"])
        assert [r["seed"] for r in arm] == [0, 1, 2]
        (n,) = {r["in_domain"]["examples"] for r in arm}
        inside = mean_interval([_percent(r["in_domain"]) for r in arm])
        line = f"| {name} | {inside.mean:.2f} +- {inside.half_width:.2f}% (n = {n}) |"
        if engine is not None:
            (m,) = {r["held_out_engine"]["examples"] for r in arm}
            held = mean_interval([_percent(r["held_out_engine"]) for r in arm])
            per_seed = [_percent(r["in_domain"]) - _percent(r["held_out_engine"]) for r in arm]
            gap = mean_interval(per_seed)
            gaps[engine] = gap.mean
            shown = f"{gap.mean:.1f} +- {gap.half_width:.1f}"
            line += f" {held.mean:.2f} +- {held.half_width:.2f}% (n = {m:,}) | "
            assert line in text, line
            assert shown in text and ", ".join(f"{g:.1f}" for g in per_seed) + " |" in text
        else:
            assert line in text, line
    assert min(gaps.values()) > 8 and min(gaps, key=gaps.get) == "flite"  # "flite is closest"
    assert max(gaps, key=gaps.get) == "espeak"
