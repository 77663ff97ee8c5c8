"""`kws data merge`: extra training speakers join a set; its evaluation splits stay put."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.cli import main
from kws.data import merge
from kws.data.gsc import index_folder, which_set
from kws.data.merge import merge_sets
from kws.data.synth.manifest import check_manifest
from kws.errors import UserError
from kws.io import DIR_MODE, STAGING_OWNER_FILE, atomic_write_bytes

RATE = 16000


def _speakers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:08x}" for i in range(count)]


def make_set(root, speakers, words=("yes", "no", "cat"), seed=0, manifest=None):
    """A tiny GSC-layout set: every speaker says every word once; hash-rule split lists."""
    rng = np.random.default_rng(seed)
    lists = {"validation": [], "testing": []}
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
        for speaker in speakers:
            name = f"{speaker}_nohash_0.wav"
            sf.write(root / word / name, rng.normal(0, 0.1, 160), RATE, subtype="PCM_16")
            if (split := which_set(name)) in lists:
                lists[split].append(f"{word}/{name}")
    for split, rels in lists.items():
        (root / f"{split}_list.txt").write_text("".join(f"{r}\n" for r in sorted(rels)))
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav", rng.normal(0, 0.1, RATE), RATE)
    (root / "README.md").write_text(f"# Set {root.name}\n\nLicence: CC-BY-4.0 ({root.name})\n")
    if manifest is not None:
        (root / "synth.json").write_text(json.dumps(manifest))
    return root


def _snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture
def sets(tmp_path):
    base = make_set(
        tmp_path / "base",
        _speakers("espeak", 40),
        seed=1,
        manifest={"seed": 0, "exclude": ["yes", "no"], "words": ["yes", "no"]},
    )
    extra = make_set(tmp_path / "extra", _speakers("kokoro", 40), seed=2,
                     manifest={"seed": 5, "exclude": ["cat"], "words": ["cat"]})  # fmt: skip
    return base, extra


def test_merge_adds_training_clips_and_keeps_evaluation_splits(sets, tmp_path):
    base, extra = sets
    before = _snapshot(base) | _snapshot(extra)
    report = merge_sets(tmp_path / "merged", base, [extra])
    # readable as a synthesized set is (mkdtemp's 0700 kept it from other users)
    assert (tmp_path / "merged").stat().st_mode & 0o777 == DIR_MODE
    out = index_folder(tmp_path / "merged")
    base_index, extra_index = index_folder(base), index_folder(extra)

    def rels(clips, split):
        return {f"{c.word}/{c.path.name}" for c in clips if c.split == split}

    for split in ("validation", "testing"):
        assert rels(out.clips, split) == rels(base_index.clips, split)  # the very same examples
        assert (tmp_path / "merged" / f"{split}_list.txt").read_text() == (
            base / f"{split}_list.txt"
        ).read_text()
    extra_training = rels(extra_index.clips, "training")
    assert rels(out.clips, "training") == rels(base_index.clips, "training") | extra_training
    assert not rels(extra_index.clips, "validation") & {
        f"{c.word}/{c.path.name}" for c in out.clips
    }
    assert report.added == {str(extra): len(extra_training)}
    assert report.split_clips["training"] == len(rels(out.clips, "training"))
    # hard links into the sources, which are untouched; no temp folder left beside the result
    merged_clip = tmp_path / "merged" / sorted(extra_training)[0]
    assert report.hard_links and os.path.samefile(merged_clip, extra / sorted(extra_training)[0])
    assert (tmp_path / "merged" / "_background_noise_" / "white.wav").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "extra", "merged"]
    atomic_write_bytes(merged_clip, b"rewritten")  # a kws write into the merge
    assert _snapshot(base) | _snapshot(extra) == before


def test_merge_records_sources_licences_and_refuses_synth_extension(sets, tmp_path):
    base, extra = sets
    merge_sets(tmp_path / "merged", base, [extra])
    readme = (tmp_path / "merged" / "README.md").read_text()
    assert "CC-BY-4.0 (base)" in readme and "CC-BY-4.0 (extra)" in readme
    manifest = json.loads((tmp_path / "merged" / "synth.json").read_text())
    assert manifest["exclude"] == ["cat", "no", "yes"]  # negative speech avoids every keyword
    assert manifest["merged_from"] == [str(base), str(extra)]
    with pytest.raises(UserError, match="kws data merge"):
        check_manifest(tmp_path / "merged", 0, {})


def test_merge_joins_the_speaker_tables_of_the_speakers_it_keeps(sets, tmp_path):
    base, extra = sets
    (base / "speakers.csv").write_text("id,engine,voice\n" + "".join(
        f"{s},espeak,en-us\n" for s in _speakers("espeak", 40)))  # fmt: skip
    (extra / "speakers.csv").write_text("id,engine,voice\n" + "".join(
        f"{s},kokoro,en-gb\n" for s in _speakers("kokoro", 40)))  # fmt: skip
    before = _snapshot(base)
    merge_sets(tmp_path / "merged", base, [extra])
    rows = (tmp_path / "merged" / "speakers.csv").read_text().splitlines()
    training = {c.speaker for c in index_folder(extra).clips if c.split == "training"}
    assert rows[0] == "id,engine,voice" and len(rows) == 1 + 40 + len(training) < 81
    assert {r.split(",")[0] for r in rows[1:] if r.startswith("kokoro")} == training
    assert _snapshot(base) == before  # the base's table was replaced in the result, not written


def test_merge_all_splits_extends_the_lists(sets, tmp_path):
    base, extra = sets
    merge_sets(tmp_path / "merged", base, [extra], splits=("training", "validation", "testing"))
    out = index_folder(tmp_path / "merged")
    assert len(out.clips) == len(index_folder(base).clips) + len(index_folder(extra).clips)
    assert {c.split for c in out.clips if c.speaker.startswith("kokoro")} == {
        "training",
        "validation",
        "testing",
    }


def test_merge_never_writes_into_an_existing_set(sets, tmp_path):
    base, extra = sets
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        merge_sets(tmp_path / "taken", base, [extra])
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    with pytest.raises(UserError, match="inside the set"):
        merge_sets(base / "merged", base, [extra])
    with pytest.raises(UserError, match="named twice"):
        merge_sets(tmp_path / "m", base, [base])


def test_merge_refuses_a_clash_and_leaves_nothing(sets, tmp_path):
    base, _ = sets
    clash = make_set(tmp_path / "clash", _speakers("espeak", 40), seed=9)  # same names, new audio
    with pytest.raises(UserError, match="two recordings share a name"):
        merge_sets(tmp_path / "merged", base, [clash])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "clash", "extra"]
    # the same set twice over (identical bytes) is kept once
    copy = tmp_path / "copy"
    make_set(copy, _speakers("espeak", 40), seed=1)
    report = merge_sets(tmp_path / "merged", base, [copy])
    assert report.added == {str(copy): 0} and report.duplicates > 0


def test_merge_refuses_a_speaker_in_two_splits(sets, tmp_path):
    base, _ = sets
    test_rel = (base / "testing_list.txt").read_text().split()[0]
    leaky = tmp_path / "leaky"
    (leaky / "dog").mkdir(parents=True)
    speaker_file = test_rel.split("/")[1].replace("_nohash_0", "_nohash_7")
    sf.write(leaky / "dog" / speaker_file, np.zeros(160), RATE, subtype="PCM_16")
    (leaky / "validation_list.txt").write_text("")
    (leaky / "testing_list.txt").write_text("other/x_nohash_0.wav\n")  # lists: all training here
    with pytest.raises(UserError, match="leaks test speakers"):
        merge_sets(tmp_path / "merged", base, [leaky])


def test_cli_merge_as_the_readme_writes_it(sets, tmp_path, capsys):
    base, extra = sets
    out = tmp_path / "synth_x2"
    assert main(["data", "merge", str(base), str(extra), "--out", str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert main(["data", "merge", str(base), str(extra), "--out", str(out)]) == 2
    assert "choose a new --out folder" in capsys.readouterr().err
    assert main(["data", "merge", str(base), str(tmp_path / "nope"), "--out", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["empty", "missing"])
def test_merge_refuses_a_symlink_as_out(sets, tmp_path, capsys, target):
    """A link to an empty folder crashed in rmdir, a dangling one in rename (NotADirectoryError)."""
    base, extra = sets
    link = tmp_path / "link"
    if target == "empty":
        (tmp_path / target).mkdir()
    link.symlink_to(tmp_path / target)
    assert main(["data", "merge", str(base), str(extra), "--out", str(link)]) == 2
    err = capsys.readouterr().err
    assert f"--out '{link}' is a symbolic link (to '{tmp_path / target}')" in err
    assert "Traceback" not in err and os.readlink(link) == str(tmp_path / target)
    left = {"base", "extra", "link"} | ({"empty"} if target == "empty" else set())
    assert {p.name for p in tmp_path.iterdir()} == left  # no staging folder either


def _staging(tmp_path, name: str, claimed: bool = True, age_s: float = 0.0):
    folder = tmp_path / f".merged.{name}.merging"
    (folder / "yes").mkdir(parents=True)
    (folder / "yes" / "clip.wav").write_bytes(b"x" * 1000)
    if claimed:
        (folder / STAGING_OWNER_FILE).write_text("1\n")
    os.utime(folder, (time.time() - age_s,) * 2)
    return folder


def test_merge_sweeps_staging_folders_of_killed_merges_only(sets, tmp_path, capsys):
    """A merge killed by SIGTERM left its hidden staging folder forever (one was 61 MB)."""
    base, extra = sets
    code = (  # a merge that claimed its staging folder, then was killed
        "import os, signal, sys; from pathlib import Path; from kws.data import merge; "
        "from kws.io import staged_folder; "
        "stage = staged_folder(Path(sys.argv[1]), merge.STAGING_SUFFIX); "
        "tmp = stage.__enter__(); (tmp / 'yes').mkdir(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "merged")], check=False)
    [killed] = tmp_path.glob(".merged.*.merging")
    old = _staging(tmp_path, "oldoldol", claimed=False, age_s=2 * 3600)  # kws without locks
    new = _staging(tmp_path, "newnewne", claimed=False)  # just made: not claimed yet
    live = _staging(tmp_path, "livelive")
    lock = os.open(live, os.O_RDONLY)  # held as a running merge holds it
    fcntl.flock(lock, fcntl.LOCK_EX)
    other = tmp_path / ".merged.v2.abcdefgh.merging"  # another --out's (merged.v2)
    other.mkdir()
    (other / STAGING_OWNER_FILE).write_text("1\n")
    try:
        assert (
            main(["data", "merge", str(base), str(extra), "--out", str(tmp_path / "merged")]) == 0
        )
    finally:
        os.close(lock)
    out = capsys.readouterr().out
    swept = ", ".join(map(str, sorted([killed, old])))
    assert f"removed 2 staging folder(s) left by killed merges: {swept}\n" in out
    assert not killed.exists() and not old.exists()
    assert new.is_dir() and live.is_dir() and other.is_dir()
    assert (live / "yes" / "clip.wav").stat().st_size == 1000
    assert not (tmp_path / "merged" / STAGING_OWNER_FILE).exists()


def test_merge_names_the_real_reason_links_failed(sets, tmp_path, capsys, monkeypatch):
    """A link refused with EMLINK (too many links) was reported as "another file system"."""
    base, extra = sets

    def too_many(src, dst):
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(merge.os, "link", too_many)
    assert main(["data", "merge", str(base), str(extra), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "files copied as links failed: too many hard links to one file, EMLINK)" in out
    assert "another file system" not in out


@pytest.mark.parametrize("role", ["extra", "base"])
def test_merge_refuses_a_folder_that_is_not_a_gsc_set(sets, tmp_path, capsys, role):
    """`ng2/recordings/*.wav` was merged as a word "recordings" (a 10-minute and a 48 kHz
    file); as the base, the result had 0 validation and 0 testing clips, exit 0."""
    base, _ = sets
    (tmp_path / "ng2" / "recordings").mkdir(parents=True)
    sf.write(tmp_path / "ng2" / "recordings" / "talk.wav", np.zeros(48000), 48000)
    sources = [base, tmp_path / "ng2"] if role == "extra" else [tmp_path / "ng2", base]
    assert main(["data", "merge", *map(str, sources), "--out", str(tmp_path / "m8")]) == 2
    err = capsys.readouterr().err
    assert f"'{tmp_path / 'ng2'}' is not a Speech Commands-layout set: it has no " in err
    assert "validation_list.txt and no testing_list.txt, which every set from" in err
    assert not (tmp_path / "m8").exists() and not list(tmp_path.glob(".m8.*"))


def test_merge_records_its_sources_as_absolute_paths(sets, tmp_path, monkeypatch):
    """synth.json's merged_from held the paths relative to the folder the merge ran in."""
    monkeypatch.chdir(tmp_path)
    merge_sets(Path("merged"), Path("base"), [Path("extra")])
    manifest = json.loads((tmp_path / "merged" / "synth.json").read_text())
    assert manifest["merged_from"] == [str(tmp_path / "base"), str(tmp_path / "extra")]
