"""Worker-side jobs of `kws data synth`: one speaker's clips, one noise file, the process pool.

Each job is a plain function of picklable arguments, run on a `ProcessPoolExecutor` (one
process per core; Kokoro's onnxruntime session is loaded once per process on first use). A job
writes its WAVs atomically, so an interrupted run leaves only whole files plus temp files that
the next run removes.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.data.gsc import SPLIT_LISTS, which_set
from kws.data.synth.acoustics import SAMPLE_RATE_HZ, impulse_response
from kws.data.synth.chain import CLIP_SAMPLES, render_clip
from kws.data.synth.noise import make_noise
from kws.data.synth.speakers import Speaker, seed_sequence, speak
from kws.errors import UserError
from kws.io import atomic_write_bytes, atomic_write_text

_WORD_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def check_words(words: Iterable[str]) -> list[str]:
    """Lowercased words that can be folder names, each once; says on stderr (one line) which
    it lowercased, since data.words must then name the lower-case folders.

    Raises:
        UserError: a word that cannot be a folder name, a word given twice (also in another
            case: `hey-robot Hey-Robot` would be one folder), or no words.
    """
    given: dict[str, list[str]] = {}
    for raw in words:
        word = raw.strip().lower()
        if not _WORD_RE.fullmatch(word):
            raise UserError(
                f"word {raw!r} cannot be a folder name; use letters and digits, with - between "
                "parts of a phrase (e.g. hey-robot) and ' inside words"
            )
        given.setdefault(word, []).append(raw.strip())
    if not given:
        raise UserError("no words to synthesize; pass at least one word")
    repeated = {word: said for word, said in given.items() if len(said) > 1}
    if repeated:
        names = "; ".join(f"{word!r} as {', '.join(map(repr, said))}"
                          for word, said in repeated.items())  # fmt: skip
        raise UserError(
            f"--words names a word more than once ({names}); words are lower-case folder "
            "names, so these would be one word: name each word once"
        )
    lowered = [f"{said[0]} -> {word}" for word, said in given.items() if said[0] != word]
    if lowered:  # else `data.words=[Marvin]` fails later, far from the cause
        print(f"note: words are lower case: {', '.join(lowered)} (name them so in data.words)",
              file=sys.stderr)  # fmt: skip
    return list(given)


def is_valid_clip(path: Path) -> bool:
    """Whether `path` is a finished clip: 16 kHz mono 16-bit PCM of exactly one clip."""
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


def noise_ok(path: Path, seconds: float) -> bool:
    """Whether `path` is a finished background recording of `seconds` at 16 kHz."""
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    want = int(round(seconds * SAMPLE_RATE_HZ))
    return (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE_HZ, 1, want)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Write 16 kHz 16-bit PCM `audio (samples,)` atomically."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getvalue())


def speaker_task(speaker: Speaker, seed: int, jobs: list[tuple[str, int, str]]):
    """Say every `(word, n, path)` of one speaker; returns (written, error messages).

    The room's impulse response is computed once here for all of the speaker's clips.
    """
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        said = speak(speaker, [word.replace("-", " ") for word, _, _ in jobs], Path(tmp))
    impulse = impulse_response(speaker.room, speaker.seed)
    written, errors = 0, []
    for (word, n, path), result in zip(jobs, said, strict=True):
        if isinstance(result, Exception):
            errors.append(f"{word} by {speaker.id} ({speaker.engine} {speaker.voice}): {result}")
            continue
        rng = np.random.default_rng(seed_sequence("clip", seed, word, speaker.id, n))
        write_wav(Path(path), render_clip(result[0], result[1], speaker, rng, impulse))
        written += 1
    return written, errors


def noise_task(kind: str, seconds: float, seed: int, voices: list[Speaker], path: str):
    """Write one background recording; returns (0 clips, error messages)."""
    with tempfile.TemporaryDirectory(prefix="kws-noise-") as tmp:
        try:
            write_wav(Path(path), make_noise(kind, seconds, seed, voices, Path(tmp)))
        except RuntimeError as exc:  # babble when every engine call failed
            return 0, [f"background noise {kind}: {exc}"]
    return 0, []


def run_tasks(calls: list[tuple[Callable, tuple, int]], workers: int, progress: bool):
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
    for split, name in SPLIT_LISTS.items():
        text = "".join(f"{rel}\n" for rel in sorted(lists[split]))
        atomic_write_text(out_dir / name, text)
    return {split: len(rels) for split, rels in lists.items()}


def remove_stale_temps(out_dir: Path) -> None:
    """Temp files left by an interrupted run (the finished WAVs are renamed into place)."""
    for stale in out_dir.glob("*/.*.tmp"):
        stale.unlink(missing_ok=True)
