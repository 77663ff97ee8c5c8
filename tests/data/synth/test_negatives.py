"""Long keyword-free speech (`--negatives-minutes`): files, manifest, no keyword, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from kws.cli import main
from kws.data.gsc import index_clips
from kws.data.synth import available_engines, synthesize_negatives
from kws.data.synth.negatives import NEGATIVES_DIR
from kws.errors import UserError


def test_negative_speech_files_manifest_and_resume(tmp_path):
    if "espeak" not in available_engines():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    engines = ["espeak", "flite"]
    keywords = ["yes", "no", "marvin"]
    options = dict(keywords=keywords, engines=engines, workers=2, file_seconds=8.0)
    report = synthesize_negatives(tmp_path, 0.25, progress=False, **options)  # 15 s: 8 + 7
    folder = tmp_path / NEGATIVES_DIR
    assert report.num_created == 2 and report.seconds_total == 15.0
    lengths = [sf.info(folder / f"neg_00{i}.wav").frames for i in range(2)]
    assert lengths == [8 * 16000, 7 * 16000]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["neg_000.wav", "neg_001.wav"]
    assert {"yesterday", "known", "note"} & set(manifest["excluded_words"])
    sentences = [s for f in manifest["files"] for s in f["sentences"]]
    assert len(sentences) >= 3
    for sentence in sentences:
        assert not any(k in word for word in sentence["text"].split() for k in keywords)
        assert sentence["speaker"].split("-")[0] in engines
    audio, _ = sf.read(folder / "neg_000.wav", dtype="float32")
    assert 0.01 < np.std(audio) and np.abs(audio).max() < 0.95
    assert index_clips(tmp_path) == []  # `_negatives_` is never mistaken for clips
    before = (folder / "neg_001.wav").read_bytes()
    (folder / "neg_000.wav").unlink()
    again = synthesize_negatives(tmp_path, 0.25, progress=False, **options)
    assert again.num_created == 1 and (folder / "neg_001.wav").read_bytes() == before
    with pytest.raises(UserError, match="must be positive"):
        synthesize_negatives(tmp_path, 0, progress=False)


def test_cli_writes_only_negatives_when_asked(tmp_path, capsys):
    if "espeak" not in available_engines():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / "more_negatives"
    args = ["data", "synth", "--out", str(out), "--negatives-only", "--negatives-minutes", "0.1",
            "--engines", "espeak", "--words", "marvin", "--workers", "1"]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [NEGATIVES_DIR]  # no word folders, no lists
    manifest = json.loads((out / NEGATIVES_DIR / "manifest.json").read_text())
    assert manifest["keywords"] == ["marvin"] and len(manifest["files"]) == 1
    assert "min of keyword-free speech" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--negatives-only"]) == 2
    assert "add --negatives-minutes N" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
