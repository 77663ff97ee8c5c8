"""The clip-error diagnostic (recipes/diagnostics/clip_errors.py) on the streaming tone run."""

from __future__ import annotations

import json

import pytest

from kws.data.gsc import index_clips
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

clip_errors = load_script("recipes/diagnostics/clip_errors.py")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tables_count_every_command_clip_once_and_every_noise_cell(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    root = tmp_path / "data"
    out = tmp_path / "tables.json"
    argv = [str(run), "--data", str(root), "--backend", "torch", "--noise-clips", "6",
            "--json", str(out)]  # fmt: skip
    assert clip_errors.main(argv) == 0
    tables = json.loads(out.read_text())
    tested = [c for c in index_clips(root) if c.split == "testing" and c.word in ("yes", "no")]
    accuracy = tables["clean"]["accuracy"]
    assert accuracy["all"]["n"] == len(tested)
    # GSC-style hex speaker ids have no engine prefix: one group holds every clip
    assert accuracy["group speakers"] == accuracy["all"]
    assert accuracy["word yes"]["n"] + accuracy["word no"]["n"] == len(tested)
    assert accuracy["all"]["correct"] / len(tested) > 0.9  # the tone model knows its tones
    assert list(tables["noise"]) == ["white"]
    assert tables["noise"]["white"] == {
        snr: {"correct": tables["noise"]["white"][snr]["correct"], "n": 6}
        for snr in ("20", "10", "5", "0")
    }
    assert "with background noise (6 clips" in capsys.readouterr().out
