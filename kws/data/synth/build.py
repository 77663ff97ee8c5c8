"""`synthesize`: write a TTS dataset in exactly Google Speech Commands' layout.

Layout (REFERENCE.md): `<word>/<speaker>_nohash_<n>.wav` (16 kHz mono int16, exactly 1 s),
`_background_noise_/*.wav`, `validation_list.txt` / `testing_list.txt` from GSC's hash rule,
and a README saying how the set was made. Every clip is seeded from (seed, word, speaker, n),
so a seed gives byte-identical files, and a rerun keeps the valid clips already written.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.data.gsc import BACKGROUND_DIR, which_set
from kws.data.synth import engines as eng
from kws.data.synth.chain import CLIP_SAMPLES, SAMPLE_RATE_HZ, render_clip
from kws.data.synth.noise import NOISE_TYPES, make_noise
from kws.data.synth.readme import write_readme
from kws.data.synth.speakers import Speaker, make_speakers, seed_sequence, speak
from kws.data.synth.words import DEFAULT_WORDS
from kws.errors import UserError
from kws.io import atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
_WORD_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_MANIFEST = "synth.json"


@dataclass
class SynthReport:
    """What `synthesize` found and wrote."""

    engines_found: dict[str, list[str]]  # engine -> voices used (espeak variants: `variants`)
    num_clips: int  # clips of the requested words and speakers now on disk
    num_failed: int  # clips an engine could not produce
    words: list[str]
    out_dir: Path
    num_created: int = 0  # written by this call (the rest were kept from an earlier run)
    num_speakers: int = 0
    seconds: float = 0.0
    espeak_variants: list[str] = field(default_factory=list)
    engine_versions: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # the first few error messages

    @property
    def clips_per_second(self) -> float:
        return self.num_created / self.seconds if self.seconds > 0 else 0.0


def available_engines() -> dict[str, list[str]]:
    """Engine -> voices found on this machine (engines without voices are left out)."""
    return {name: list(info.voices) for name, info in eng.discover().items()}


def _check_words(words: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in words:
        word = raw.strip().lower()
        if not _WORD_RE.fullmatch(word):
            raise UserError(
                f"word {raw!r} cannot be a folder name; use letters and digits, with - between "
                "parts of a phrase (e.g. hey-robot) and ' inside words"
            )
        if word not in out:
            out.append(word)
    if not out:
        raise UserError("no words to synthesize; pass at least one word")
    return out


def _select_engines(requested: list[str] | None) -> dict[str, eng.EngineInfo]:
    found = eng.discover()
    if requested is None:
        if not found:
            raise UserError(f"no TTS engine found (espeak-ng, flite, festival); {eng.INSTALL_HINT}")
        return dict(found)
    names = [eng.canonical_engine(name) for name in requested]
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(
            f"TTS engine(s) {', '.join(missing)} not found on this machine (found: "
            f"{', '.join(found) or 'none'}); {eng.INSTALL_HINT}"
        )
    return {name: found[name] for name in sorted(set(names))}


def _is_valid_clip(path: Path) -> bool:
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    return (info.samplerate, info.channels, info.frames, info.subtype) == (
        SAMPLE_RATE_HZ,
        1,
        CLIP_SAMPLES,
        "PCM_16",
    )


def _write_wav(path: Path, audio: np.ndarray) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getvalue())


def _speaker_task(speaker: Speaker, seed: int, jobs: list[tuple[str, int, str]]):
    """Say every `(word, n, path)` of one speaker; returns (written, error messages)."""
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        said = speak(speaker, [word.replace("-", " ") for word, _, _ in jobs], Path(tmp))
    written, errors = 0, []
    for (word, n, path), result in zip(jobs, said, strict=True):
        if isinstance(result, Exception):
            errors.append(f"{word} by {speaker.id} ({speaker.engine} {speaker.voice}): {result}")
            continue
        rng = np.random.default_rng(seed_sequence("clip", seed, word, speaker.id, n))
        _write_wav(Path(path), render_clip(result[0], result[1], speaker, rng))
        written += 1
    return written, errors


def _noise_task(kind: str, seconds: float, seed: int, voices: list[Speaker], path: str):
    """Write one background recording; returns (0 clips, error messages)."""
    with tempfile.TemporaryDirectory(prefix="kws-noise-") as tmp:
        try:
            _write_wav(Path(path), make_noise(kind, seconds, seed, voices, Path(tmp)))
        except RuntimeError as exc:  # babble when every engine call failed
            return 0, [f"background noise {kind}: {exc}"]
    return 0, []


def _clip_jobs(out_dir: Path, words: list[str], speakers: list[Speaker]):
    """Per speaker, the (word, n, path) clips still missing; and the count already valid."""
    tasks, kept = [], 0
    for speaker in speakers:
        jobs = []
        for word in words:
            path = out_dir / word / f"{speaker.id}_nohash_0.wav"
            if path.exists() and _is_valid_clip(path):
                kept += 1
            else:
                jobs.append((word, 0, str(path)))
        if jobs:
            tasks.append((speaker, jobs))
    return tasks, kept


def _run_tasks(calls: list[tuple[Callable, tuple, int]], workers: int, progress: bool):
    """Run `(function, args, clips)` calls on `workers` processes; sum (written, errors)."""
    written, errors = 0, []
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("synthesizing", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        bar.start()
        task_id = bar.add_task("clips", total=sum(c for _, _, c in calls))
    try:
        if workers <= 1:
            results = ((fn(*args), clips) for fn, args, clips in calls)
            for (done, errs), clips in results:
                written, errors = written + done, errors + errs
                if bar:
                    bar.advance(task_id, clips)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [(pool.submit(fn, *args), clips) for fn, args, clips in calls]
                for future, clips in futures:
                    done, errs = future.result()
                    written, errors = written + done, errors + errs
                    if bar:
                        bar.advance(task_id, clips)
    finally:
        if bar:
            bar.stop()
    return written, errors


def write_split_lists(out_dir: Path) -> dict[str, int]:
    """`validation_list.txt` / `testing_list.txt` over every clip under `out_dir` (hash rule)."""
    lists: dict[str, list[str]] = {"validation": [], "testing": [], "training": []}
    for word_dir in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        if word_dir.name.startswith(("_", ".")):
            continue
        for wav in sorted(word_dir.glob("*.wav")):
            lists[which_set(wav.name)].append(f"{word_dir.name}/{wav.name}")
    for split in ("validation", "testing"):
        text = "".join(f"{rel}\n" for rel in sorted(lists[split]))
        atomic_write_text(out_dir / f"{split}_list.txt", text)
    return {split: len(rels) for split, rels in lists.items()}


def _check_manifest(out_dir: Path, seed: int) -> None:
    path = out_dir / _MANIFEST
    if path.is_file():
        import json

        old = json.loads(path.read_text()).get("seed")
        if old != seed:
            raise UserError(
                f"'{out_dir}' was synthesized with seed {old}; mixing seeds in one set breaks "
                f"reproducibility: pass --seed {old} to extend it, or choose a new --out folder"
            )


def _remove_stale_temps(out_dir: Path) -> None:
    """Temp files left by an interrupted run (the finished WAVs are renamed into place)."""
    for stale in out_dir.glob("*/.*.tmp"):
        stale.unlink(missing_ok=True)


def _announce(found: dict[str, eng.EngineInfo], progress: bool) -> None:
    lines = [f"{name}: {', '.join(info.voices)}" for name, info in found.items()]
    if "espeak" in found:
        lines.append(f"espeak variants: {len(found['espeak'].variants)}")
    message = "TTS engines and voices used -> " + "; ".join(lines)
    log.info(message)
    if progress:
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False)


def synthesize(
    out_dir: Path,
    *,
    words: list[str] | None = None,
    clips_per_word: int = 60,
    seed: int = 0,
    workers: int = 0,
    noise_seconds: float = 60.0,
    engines: list[str] | None = None,
    progress: bool = True,
) -> SynthReport:
    """Synthesize a GSC-layout set under `out_dir` with every TTS voice found on this machine.

    Args:
        out_dir: dataset root; created if missing; valid clips already there are kept.
        words: folder names to say (default `DEFAULT_WORDS`: GSC's 35 words + confusables);
            `-` inside a word is spoken as a space (`hey-robot`).
        clips_per_word: speakers, each saying every word once (`<speaker>_nohash_0.wav`).
        seed: same seed -> byte-identical WAVs.
        workers: processes; 0 = one per CPU core.
        noise_seconds: length of each `_background_noise_` recording (0 = none).
        engines: subset of espeak (espeak-ng), flite, festival; None = all found.
        progress: show a progress bar and the engines found.
    """
    start_s = time.perf_counter()
    out_dir = Path(out_dir)
    words = _check_words(DEFAULT_WORDS if words is None else words)
    if clips_per_word < 1:
        raise UserError(f"clips_per_word must be at least 1 (got {clips_per_word})")
    found = _select_engines(engines)
    _announce(found, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, seed)
    _remove_stale_temps(out_dir)
    speakers = make_speakers(found, seed, clips_per_word)
    tasks, kept = _clip_jobs(out_dir, words, speakers)
    calls: list[tuple[Callable, tuple, int]] = [
        (_speaker_task, (speaker, seed, jobs), len(jobs)) for speaker, jobs in tasks
    ]
    calls[:0] = _noise_calls(out_dir, found, seed, noise_seconds)  # babble is slow: start early
    written, errors = _run_tasks(calls, workers or os.cpu_count() or 1, progress)
    for message in errors[:20]:
        log.warning("synthesis failed: %s", message)
    splits = write_split_lists(out_dir)
    report = SynthReport(
        engines_found={name: list(info.voices) for name, info in found.items()},
        num_clips=kept + written,
        num_failed=len(errors),
        words=words,
        out_dir=out_dir,
        num_created=written,
        num_speakers=len(speakers),
        espeak_variants=list(found["espeak"].variants) if "espeak" in found else [],
        engine_versions={name: info.version for name, info in found.items()},
        failures=errors[:20],
    )
    atomic_write_json(out_dir / _MANIFEST, {"seed": seed, "words": words})
    write_readme(out_dir, report, speakers, splits, seed, clips_per_word, noise_seconds)
    report.seconds = time.perf_counter() - start_s
    return report


def _noise_calls(out_dir: Path, found, seed: int, seconds: float):
    if seconds <= 0:
        return []
    voices = make_speakers(found, seed + 7919, 8)  # babble voices: not dataset speakers
    calls = []
    for kind in NOISE_TYPES:
        path = out_dir / BACKGROUND_DIR / f"{kind}.wav"
        if path.exists() and _noise_ok(path, seconds):
            continue
        calls.append((_noise_task, (kind, seconds, seed, voices, str(path)), 0))
    return calls


def _noise_ok(path: Path, seconds: float) -> bool:
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    want = int(round(seconds * SAMPLE_RATE_HZ))
    return (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE_HZ, 1, want)
