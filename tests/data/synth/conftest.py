"""Fixtures of the synthesis tests: a small, per-session pronunciation cache."""

from __future__ import annotations

import pytest

from kws.data.synth import negatives, vocabulary


@pytest.fixture(autouse=True)
def small_lexicon(monkeypatch, tmp_path_factory):
    """4,000 candidate words instead of 12,000 (espeak-ng: ~2 s instead of ~6 s), cached once."""
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kws-cache"))
    monkeypatch.setattr(vocabulary, "LEXICON_WORDS", 4000)
    monkeypatch.setattr(negatives, "LEXICON_WORDS", 4000)
