"""Data stage: decode every clip once into an int16 audio bank, with an optional disk cache.

Every clip goes through `kws.data.audio`'s decoding policy (the same one streaming and
synthesis use); skipped and repaired files are counted in an `AudioReport`. The bank is cached
under `data.cache_dir` as `bank-<key>.npy` plus `bank-<key>.json`, keyed by a fingerprint of the
file list (relative path, size, mtime), the audio format and the policy's version. The cache is
only an optimisation: a cache that cannot be read or written is warned about and the clips are
decoded again (or the run goes on without writing one).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.config import FeatureConfig
from kws.data.audio import AudioError, AudioReport, decode_clip
from kws.data.gsc import Clip, background_files
from kws.io import atomic_write_bytes, atomic_write_json

# Bump when the decoding policy changes what a bank holds, so old caches are not reused (2: WAV
# headers checked, truncated clips skipped).
POLICY_VERSION = 2
# Errors that mean "this cache file is unusable" (truncated .npy: ValueError/EOFError; bad JSON:
# ValueError; unreadable: OSError; wrong keys: KeyError/TypeError).
_CACHE_ERRORS = (OSError, ValueError, EOFError, KeyError, TypeError)


@dataclass
class AudioBank:
    """Decoded int16 clips `(clips, samples)`, the decode report and the rows the policy skipped."""

    audio: np.ndarray  # (clips, samples) int16; rows of skipped clips are zeros
    report: AudioReport = field(default_factory=AudioReport)
    skipped_rows: list[int] = field(default_factory=list)  # rows the policy skipped

    def kept_rows(self) -> list[int]:
        skipped = set(self.skipped_rows)
        return [i for i in range(len(self.audio)) if i not in skipped]


def _fingerprint(clips: list[Clip], root: Path, feature_cfg: FeatureConfig) -> str:
    head = f"policy{POLICY_VERSION}:{feature_cfg.sample_rate_hz}:{feature_cfg.clip_samples}"
    digest = hashlib.sha1(head.encode())
    for clip in clips:
        stat = clip.path.stat()
        rel = clip.path.relative_to(root) if clip.path.is_relative_to(root) else clip.path
        digest.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _reanchored(report: dict, old_root: str, new_root: str) -> dict:
    """The report's paths under `new_root`: the cache key ignores where the data root lives."""

    def move(path: str) -> str:
        return new_root + path[len(old_root) :] if path.startswith(old_root) else path

    report = dict(report)
    report["examples"] = {k: move(v) for k, v in report["examples"].items()}
    report["skipped"] = [move(p) for p in report["skipped"]]
    return report


def _read_cache(cache: Path, meta: Path, shape: tuple[int, int], root: Path) -> AudioBank | None:
    """The cached bank, or None (with a warning when files exist but cannot be used)."""
    if not (cache.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("policy") != POLICY_VERSION:
            raise ValueError(f"written by decoding policy {info.get('policy')}")
        report = AudioReport.from_json(_reanchored(info["report"], info["root"], str(root)))
        rows = [int(r) for r in info["skipped_rows"]]
        audio = np.load(cache, allow_pickle=False)
        if audio.shape != shape or audio.dtype != np.int16:
            raise ValueError(f"holds {audio.dtype} {audio.shape}, expected int16 {shape}")
    except _CACHE_ERRORS as exc:
        _warn(f"the audio-bank cache {cache} is unusable ({exc}); decoding the clips again")
        return None
    return AudioBank(audio, report, rows)


def _write_cache(cache: Path, meta: Path, bank: AudioBank, root: Path) -> None:
    """Write the cache; failures only cost the next run a decode, so they are warnings."""
    buffer = io.BytesIO()
    np.save(buffer, bank.audio)
    try:
        atomic_write_bytes(cache, buffer.getvalue())
        info = {
            "policy": POLICY_VERSION,
            "root": str(root),
            "skipped_rows": bank.skipped_rows,
            "report": bank.report.to_json(),
        }
        atomic_write_json(meta, info)
    except OSError as exc:
        _warn(
            f"cannot write the audio-bank cache {cache} ({exc}); going on without it (the next "
            "run decodes again): point data.cache_dir at a writable folder, or set it to '' to "
            "turn the cache off"
        )


def decode_bank(
    clips: list[Clip],
    feature_cfg: FeatureConfig,
    cache_dir: str | Path | None,
    root: Path,
    progress: bool = True,
) -> AudioBank:
    """Decode every clip into an int16 bank `(clips, samples)`, from the cache when it matches.

    Args:
        clips: the clips to decode, in bank-row order.
        feature_cfg: gives the sample rate and clip length.
        cache_dir: folder of the bank cache; None or "" turns the cache off.
        root: data root (cache keys use paths relative to it).
        progress: show a progress bar.
    """
    samples = feature_cfg.clip_samples
    root = Path(root).resolve()  # clip paths are resolved; cache keys are relative to this
    cache = meta = None
    if cache_dir:
        key = _fingerprint(clips, root, feature_cfg)
        cache = Path(cache_dir) / f"bank-{key}.npy"
        meta = cache.with_suffix(".json")
        cached = _read_cache(cache, meta, (len(clips), samples), root)
        if cached is not None:
            return cached
    audio = np.zeros((len(clips), samples), dtype=np.int16)
    bank = AudioBank(audio)

    def work(i: int):
        try:
            audio[i], tags = decode_clip(clips[i].path, feature_cfg.sample_rate_hz, samples)
            return tags
        except AudioError as exc:
            return exc

    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"decoding {len(clips)} clips", total=len(clips))
        with ThreadPoolExecutor(max_workers=4) as pool:
            # Recorded here, in clip order, so counts and example paths are deterministic.
            outcomes = pool.map(work, range(len(clips)))
            for row, (clip, outcome) in enumerate(zip(clips, outcomes, strict=True)):
                if isinstance(outcome, AudioError):
                    bank.report.skip(outcome)
                    bank.skipped_rows.append(row)
                else:
                    bank.report.add(clip.path, outcome)
                bar.advance(task)
    if cache:
        _write_cache(cache, meta, bank, root)
    return bank


def load_noise(
    root: Path, feature_cfg: FeatureConfig, warn_missing: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Background files as a zero-padded `(files, max_len)` float32 matrix plus lengths.

    Files go through the decoding policy; files shorter than a clip cannot give a slice and are
    left out with a warning. `warn_missing=False` when no noise is needed (an official test set
    ships real silence and is never augmented).
    """
    samples = feature_cfg.clip_samples
    report = AudioReport()
    files = background_files(root)
    decoded = [(p, report.load(p, feature_cfg.sample_rate_hz)) for p in files]
    report.warn(what="background file")
    short = [p for p, n in decoded if n is not None and len(n) < samples]
    if short:
        _warn(f"{len(short)} background file(s) shorter than a clip are not used, e.g. {short[0]}")
    noises = [n for _, n in decoded if n is not None and len(n) >= samples]
    if not noises:
        if warn_missing:
            _warn(
                f"no usable {root}/_background_noise_/*.wav: silence examples are digital "
                "zeros and no noise augmentation is applied"
            )
        return np.zeros((0, samples), dtype=np.float32), []
    noise = np.zeros((len(noises), max(len(n) for n in noises)), dtype=np.float32)
    for i, n in enumerate(noises):
        noise[i, : len(n)] = n
    return noise, [len(n) for n in noises]
