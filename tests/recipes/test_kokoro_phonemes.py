"""The Kokoro phoneme A/B (recipes/diagnostics/kokoro_phonemes.py): both inputs are spoken with
the same speakers and draws, so only the phonemes differ."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kws.data.synth import kokoro
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

ab = load_script("recipes/diagnostics/kokoro_phonemes.py")

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(bool(kokoro.missing()), reason="the tts extra is not installed"),
]


def test_summary_counts_every_clip_of_both_inputs(tmp_path, capsys):
    run = str(make_tone_run(tmp_path))
    out = tmp_path / "ab.json"
    argv = [run, "--speakers", "2", "--words", "yes", "no", "--json", str(out)]
    assert ab.main(argv) == 0
    row = json.loads(out.read_text())[run]
    for name in ("raw_ipa", "kokoro_symbols"):
        assert row[name]["n"] == 4 and set(row[name]["per_word"]) == {"yes", "no"}
    difference = 100 * (row["kokoro_symbols"]["accuracy"] - row["raw_ipa"]["accuracy"])
    assert row["paired_points"]["mean"] == pytest.approx(difference)
    assert "own symbols - raw IPA" in capsys.readouterr().out


def test_only_the_phonemes_differ_between_the_inputs():
    # "yes" is spelled alike both ways (the same clip: the same speaker, room and draws);
    # "go" is ɡˈoʊ in raw IPA and ɡˈO in Kokoro's symbols (another clip)
    for _, k, clips in ab.spoken_clips(["yes", "go"], 2, 5):
        same = np.array_equal(clips["raw_ipa"], clips["kokoro_symbols"])
        assert same == (k == 0)
