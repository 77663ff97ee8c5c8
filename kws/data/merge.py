"""`kws data merge`: more speakers for a set without moving its evaluation splits.

A base set keeps every clip, list and folder it has (`_background_noise_`, `_negatives_`);
each extra set adds the clips of the splits asked for, by default only its training clips, so
validation and test stay the very same examples and accuracies stay comparable before and
after. GSC's split rule (`kws.data.gsc.which_set`) hashes the speaker, so a `kws data synth`
set built with another `--seed` has new speakers in every split, and its training clips join
the base's training split only.

Files are hard links into the sources (copies across file systems), so a merge of 100 K clips
takes seconds and no disk. Every kws write is atomic (a new file replaces the link), so writing
into the merged set never changes a source. The merged set is built in a hidden folder beside
`out_dir` and renamed into place at the end: an interrupted merge leaves no half set, and the
hidden folder of a killed one is removed by the next merge into the same `out_dir`.
"""

from __future__ import annotations

import csv
import errno
import filecmp
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kws.data.gsc import (
    LAYOUT_TEST_SET,
    SPEAKERS_CSV,
    SPLIT_LISTS,
    SPLITS,
    SYNTH_MANIFEST,
    detect_layout,
    index_folder,
)
from kws.errors import UserError
from kws.io import (
    atomic_write_json,
    atomic_write_text,
    publish_staging,
    staged_folder,
    sweep_staging,
)

STAGING_SUFFIX = ".merging"
# Why a hard link failed, where the errno alone says little to a user.
_LINK_FAILURES = {
    errno.EXDEV: "another file system",
    errno.EMLINK: "too many hard links to one file, EMLINK",
    errno.EPERM: "the file system refuses hard links here, EPERM",
}


@dataclass
class MergeReport:
    """What `merge_sets` wrote."""

    out_dir: Path
    base_clips: int  # clips of the base set (every split)
    added: dict[str, int] = field(default_factory=dict)  # extra set -> clips added
    duplicates: int = 0  # clips already in the merged set with identical bytes (kept once)
    hard_links: bool = True  # False: some files were copied (see copy_reasons)
    copies: int = 0  # files copied because a hard link failed
    copy_reasons: list[str] = field(default_factory=list)  # why the links failed (errno)
    swept: list[Path] = field(default_factory=list)  # staging folders of killed merges removed
    split_clips: dict[str, int] = field(default_factory=dict)  # split -> clips in the result


def merge_sets(
    out_dir: Path,
    base: Path,
    extras: list[Path],
    *,
    splits: tuple[str, ...] = ("training",),
) -> MergeReport:
    """Write `out_dir`: every file of `base` plus the `splits` clips of each set in `extras`.

    Args:
        out_dir: the merged set; must not exist yet (or be an empty folder).
        base: a GSC-layout set (downloaded or synthesized); all its splits, lists and `_`-folders
            are kept as they are.
        extras: sets whose clips of `splits` are added (their `_`-folders are not).
        splits: which of the extras' splits to add (`training`, `validation`, `testing`).

    Raises:
        UserError: `out_dir` exists with files in it, is a symbolic link or is inside a
            source, a source is missing, lacks the split lists (not a GSC-layout set), has no
            clips or is an official test set, an unknown split, an added clip's speaker already
            in another split of the result (test leakage), or two different files with the
            same name (e.g. one set merged twice after it changed).
    """
    out_dir, base = Path(out_dir), Path(base)
    extras = [Path(extra) for extra in extras]
    _check_args(out_dir, base, extras, splits)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    swept = sweep_staging(out_dir, STAGING_SUFFIX)
    with staged_folder(out_dir, STAGING_SUFFIX) as tmp:
        report = _merge_into(tmp, out_dir, base, extras, splits)
        publish_staging(tmp, out_dir)  # an empty out_dir (checked) is replaced
    report.swept = swept
    return report


def _check_args(out_dir: Path, base: Path, extras: list[Path], splits: tuple[str, ...]) -> None:
    bad = [split for split in splits if split not in SPLITS]
    if bad or not splits:
        raise UserError(f"--splits {' '.join(bad)}: choose from {', '.join(SPLITS)}")
    if out_dir.is_symlink():  # the result would be renamed over the link, not into its target
        raise UserError(
            f"--out '{out_dir}' is a symbolic link (to '{os.readlink(out_dir)}'); kws data merge "
            "writes a new folder and does not follow links: give a new folder, or the link's "
            "target itself if it is an empty folder"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(
            f"'{out_dir}' already exists and is not empty; kws data merge never writes into an "
            "existing set: choose a new --out folder (or delete this one)"
        )
    if not extras:
        raise UserError("nothing to merge: name at least one extra set after the base set")
    for source in [base, *extras]:
        if not source.is_dir():
            raise UserError(
                f"set '{source}' does not exist; make it with `kws data synth --out {source} "
                "--seed N` (a new seed gives new speakers)"
            )
        _check_gsc_layout(source)
        resolved = out_dir.resolve()
        if resolved == source.resolve() or source.resolve() in resolved.parents:
            raise UserError(f"--out '{out_dir}' is inside the set '{source}'; choose a folder "
                            "outside every source")  # fmt: skip
    if len({source.resolve() for source in [base, *extras]}) != len(extras) + 1:
        raise UserError("a set is named twice; name each set once")


def _check_gsc_layout(source: Path) -> None:
    """A merge keeps the base's split lists and extends them, so every source must have them:
    a folder without them (say `<dir>/recordings/*.wav`) is not a set, and as the base its
    hash-rule splits would all turn into training.

    Raises:
        UserError: `source` lacks a split list (an official test set is refused by `_index`).
    """
    missing = [name for name in SPLIT_LISTS.values() if not (source / name).is_file()]
    if missing and detect_layout(source) != LAYOUT_TEST_SET:
        raise UserError(
            f"'{source}' is not a Speech Commands-layout set: it has no {' and no '.join(missing)}"
            ", which every set from `kws data download` or `kws data synth` has (they fix its "
            "validation and test clips); merge only such sets"
        )


def _link(src: Path, dst: Path, report: MergeReport) -> None:
    """Hard-link `src` to `dst`; where the link fails, copy and record why in `report`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return
    except OSError as exc:
        shutil.copy2(src, dst)
        code = errno.errorcode.get(exc.errno, "error")
        why = _LINK_FAILURES.get(exc.errno, f"{exc.strerror or exc}, {code}")
    report.hard_links = False
    report.copies += 1
    if why not in report.copy_reasons:
        report.copy_reasons.append(why)


def _merge_into(tmp: Path, out_dir: Path, base: Path, extras: list[Path], splits: tuple[str, ...]):
    base_index = _index(base)
    report = MergeReport(out_dir=out_dir, base_clips=len(base_index.clips))
    for root, dirs, files in os.walk(base):  # every file: clips, lists, README, _-folders
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in (f for f in files if not f.startswith(".")):  # not temp files
            src = Path(root) / name
            _link(src, tmp / src.relative_to(base), report)
    listed = {split: [f"{c.word}/{c.path.name}" for c in base_index.clips if c.split == split]
              for split in SPLIT_LISTS}  # fmt: skip
    speaker_split = {clip.speaker: clip.split for clip in base_index.clips}
    for extra in extras:
        added = 0
        for clip in _index(extra).clips:
            if clip.split not in splits:
                continue
            _check_speaker(clip, speaker_split, extra)
            rel = f"{clip.word}/{clip.path.name}"
            dst = tmp / rel
            if dst.exists():
                if not (os.path.samefile(clip.path, dst) or filecmp.cmp(clip.path, dst, False)):
                    raise UserError(
                        f"'{rel}' in '{extra}' differs from the file of that name already "
                        "merged; two recordings share a name: merge sets made with different "
                        "speakers (`kws data synth --seed`)"
                    )
                report.duplicates += 1
                continue
            _link(clip.path, dst, report)
            speaker_split.setdefault(clip.speaker, clip.split)
            if clip.split in listed:
                listed[clip.split].append(rel)
            added += 1
        report.added[str(extra)] = added
    for split, name in SPLIT_LISTS.items():  # the base's lists, plus added clips of those splits
        atomic_write_text(tmp / name, "".join(f"{rel}\n" for rel in sorted(listed[split])))
    total = report.base_clips + sum(report.added.values())
    report.split_clips = {split: len(listed[split]) for split in SPLIT_LISTS}
    report.split_clips["training"] = total - sum(report.split_clips.values())
    _write_manifest(tmp, base, extras)
    _write_speakers(tmp, [base, *extras], set(speaker_split))
    _write_readme(tmp, base, extras, splits, report)
    return report


def _index(source: Path):
    index = index_folder(source)
    if index.layout == LAYOUT_TEST_SET:
        raise UserError(
            f"'{source}' is an official GSC test set (every clip is a test example); merge "
            "training sets, and evaluate on the test set with `kws evaluate RUN --data`"
        )
    if not index.clips:
        raise UserError(f"'{source}' holds no clips (<word>/*.wav); is it a dataset folder?")
    return index


def _check_speaker(clip, speaker_split: dict[str, str], extra: Path) -> None:
    other = speaker_split.get(clip.speaker)
    if other is not None and other != clip.split:
        raise UserError(
            f"speaker '{clip.speaker}' of '{extra}' would be in the {clip.split} split, but the "
            f"merged set already has them in {other}: one speaker in two splits leaks test "
            "speakers into training; merge sets with the same split lists or new speakers"
        )


def _write_manifest(tmp: Path, base: Path, extras: list[Path]) -> None:
    """A synth set's manifest, marked merged: `kws data synth` refuses to extend the result,
    and long negative speech avoids the keywords of every source."""
    manifests = [json.loads((s / SYNTH_MANIFEST).read_text()) for s in [base, *extras]
                 if (s / SYNTH_MANIFEST).is_file()]  # fmt: skip
    if not manifests:
        return
    merged = dict(manifests[0])
    for key in ("exclude", "words", "keywords"):
        merged[key] = sorted({word for m in manifests for word in m.get(key, [])})
    # absolute: the set is used (and `kws data synth` names its sources) from anywhere
    merged["merged_from"] = [os.path.abspath(source) for source in [base, *extras]]
    atomic_write_json(tmp / SYNTH_MANIFEST, merged)


def _write_speakers(tmp: Path, sources: list[Path], speakers: set[str]) -> None:
    """The sources' `speakers.csv` rows (`kws data synth`) of the speakers in the result."""
    rows, columns = {}, None
    for source in sources:
        path = source / SPEAKERS_CSV
        if path.is_file():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                columns = columns or reader.fieldnames
                rows.update((row["id"], row) for row in reader if row.get("id") in speakers)
    if columns is None:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[speaker] for speaker in sorted(rows))
    atomic_write_text(tmp / SPEAKERS_CSV, buffer.getvalue())  # replaces the base's link


def _write_readme(tmp, base, extras, splits, report: MergeReport) -> None:
    lines = [
        "# A merged set (`kws data merge`)",
        "",
        f"`kws data merge {base} {' '.join(map(str, extras))} --out {report.out_dir} --splits "
        f"{' '.join(splits)}`",
        "",
        f"- `{base}`: every clip, split list and `_` folder ({report.base_clips:,} clips)",
        *[
            f"- `{extra}`: its {', '.join(splits)} clips ({n:,} clips)"
            for extra, n in report.added.items()
        ],  # fmt: skip
        f"- result: {', '.join(f'{n:,} {s}' for s, n in report.split_clips.items())} clips",
        "",
        "Each source's README follows; its licences apply to the clips taken from it.",
    ]
    for source in [base, *extras]:
        readme = source / "README.md"
        text = readme.read_text() if readme.is_file() else "(no README)\n"
        lines += ["", "---", "", f"## Source `{source}`", "", re.sub(r"(?m)^#", "##", text)]
    atomic_write_text(tmp / "README.md", "\n".join(lines).rstrip() + "\n")
