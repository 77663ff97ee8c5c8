"""`synthesize`: write a TTS dataset in exactly Google Speech Commands' layout.

Layout (Warden 2018): `<word>/<speaker>_nohash_<n>.wav` (16 kHz mono int16, exactly 1 s),
`_background_noise_/*.wav`, `validation_list.txt` / `testing_list.txt` from GSC's hash rule,
and a README saying how the set was made. A size preset (`kws.data.synth.plan`) decides who
says what; every clip is seeded from (seed, word, speaker, n), so a seed gives byte-identical
files, and a rerun keeps the valid clips already written (an interrupted run resumes).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from kws.data.gsc import BACKGROUND_DIR
from kws.data.gsc import SYNTH_MANIFEST as MANIFEST
from kws.data.synth.accents import MAX_RULES, RULES
from kws.data.synth.engines import (
    INSTALL_HINT,
    KATAKANA_HINT,
    MBROLA_HINT,
    OPT_IN_ENGINES,
    PICO_HINT,
    RHVOICE_HINT,
    EngineInfo,
    canonical_engine,
    discover,
)
from kws.data.synth.jobs import (
    check_words,
    is_valid_clip,
    noise_ok,
    noise_task,
    remove_stale_temps,
    run_tasks,
    speaker_task,
    write_split_lists,
)
from kws.data.synth.kokoro import EXTRA_HINT, require_kokoro
from kws.data.synth.manifest import FORMAT, check_manifest
from kws.data.synth.noise import NOISE_TYPES
from kws.data.synth.piper import require_piper
from kws.data.synth.plan import (
    SIZES,
    Plan,
    engine_schedule,
    engine_weights,
    plan_clips,
    split_schedule,
    word_counts,
)
from kws.data.synth.readme import write_readme, write_speakers
from kws.data.synth.speakers import Speaker, make_speakers
from kws.data.synth.vocabulary import NegativeChoice, choose_negatives
from kws.data.synth.words import COMMAND_WORDS, GSC_OTHER_WORDS
from kws.errors import UserError
from kws.io import atomic_write_json

log = logging.getLogger(__name__)
_COST = {"kokoro": 10.0, "festival": 1.5}  # relative seconds per clip, to start slow work first


@dataclass
class SynthReport:
    """What `synthesize` found and wrote."""

    engines_found: dict[str, list[str]]  # engine -> voices used (espeak variants: `variants`)
    num_clips: int  # clips of the plan now on disk
    num_failed: int  # clips an engine could not produce
    words: list[str]
    out_dir: Path
    num_created: int = 0  # written by this call (the rest were kept from an earlier run)
    num_speakers: int = 0
    seconds: float = 0.0
    size: str = "quick"
    keywords: list[str] = field(default_factory=list)
    clips_per_engine: dict[str, int] = field(default_factory=dict)
    split_clips: dict[str, int] = field(default_factory=dict)
    espeak_variants: list[str] = field(default_factory=list)
    engine_versions: dict[str, str] = field(default_factory=dict)
    negatives: NegativeChoice | None = None
    failures: list[str] = field(default_factory=list)  # the first few error messages

    @property
    def clips_per_second(self) -> float:
        return self.num_created / self.seconds if self.seconds > 0 else 0.0


def available_engines() -> dict[str, list[str]]:
    """Engine -> voices found on this machine (engines without voices are left out)."""
    return {name: list(info.voices) for name, info in discover().items()}


def select_engines(requested: list[str] | None) -> dict[str, EngineInfo]:
    """The engines to use: those named, or every engine found but the opt-in ones (piper, mbrola,
    rhvoice, pico, katakana); kokoro or piper asked for without the `tts` extra names `kws[tts]`.

    Raises:
        UserError: no engine found, or a named engine missing (names the package to install).
    """
    found = discover()
    if requested is None:
        found = {name: info for name, info in found.items() if name not in OPT_IN_ENGINES}
        if not found:
            raise UserError(f"no TTS engine found (espeak-ng, flite, festival); {INSTALL_HINT}")
        if "kokoro" not in found:
            log.warning("kokoro (neural voices) not available: %s", EXTRA_HINT)
        return dict(sorted(found.items()))  # as with named engines: one README for both
    names = sorted({canonical_engine(name) for name in requested})
    if "kokoro" in names and "kokoro" not in found:
        require_kokoro()  # raises naming the extra when a package is missing
    if "piper" in names and "piper" not in found:
        require_piper()
    hints = (("mbrola", MBROLA_HINT), ("rhvoice", RHVOICE_HINT), ("pico", PICO_HINT),
             ("katakana", KATAKANA_HINT))  # fmt: skip
    for name, hint in hints:
        if name in names and name not in found:
            raise UserError(f"TTS engine {name} not found on this machine; {hint}")
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(
            f"TTS engine(s) {', '.join(missing)} not found on this machine (found: "
            f"{', '.join(found) or 'none'}); {INSTALL_HINT}"
        )
    return {name: found[name] for name in names}


def _plan(
    found: dict[str, EngineInfo],
    size: str,
    words: list[str] | None,
    clips_per_word: int | None,
    speakers: int | None,
    seed: int,
    negatives: bool,
) -> tuple[Plan, NegativeChoice | None]:
    if size not in SIZES:
        raise UserError(f"unknown size '{size}'; choose one of {', '.join(SIZES)}")
    preset = SIZES[size]
    choice = None
    if words is None:
        counts = word_counts(preset)
        keywords = list(COMMAND_WORDS) if not preset.gsc_counts else list(counts)
    else:
        choice = choose_negatives(words) if negatives else None
        counts = word_counts(preset, words, choice.words if choice else [])
        keywords = list(words)
    if clips_per_word is not None:
        if clips_per_word < 1:
            raise UserError(f"clips_per_word must be at least 1 (got {clips_per_word})")
        scale = clips_per_word / max(counts[w] for w in keywords if w in counts)
        counts = {w: clips_per_word if w in keywords else max(1, round(n * scale))
                  for w, n in counts.items()}  # fmt: skip
    count = speakers or max(preset.speakers, clips_per_word or 0)
    weights = engine_weights(sorted(found), preset.kokoro_share)
    plan = plan_clips(counts, count, weights, seed, preset.repeat_probability, keywords=keywords)
    return plan, choice


def _speaker_calls(out_dir: Path, plan: Plan, speakers: list[Speaker], seed: int):
    """Per speaker the clips still missing; and how many valid clips are already there."""
    calls, kept = [], 0
    for speaker, said in zip(speakers, plan.clips, strict=True):
        jobs = []
        for word, n in said:
            path = out_dir / word / f"{speaker.id}_nohash_{n}.wav"
            if path.exists() and is_valid_clip(path):
                kept += 1
            else:
                jobs.append((word, n, str(path)))
        if jobs:
            calls.append((speaker_task, (speaker, seed, jobs), len(jobs)))
    calls.sort(key=lambda c: -c[2] * _COST.get(c[1][0].engine, 1.0))  # slowest first
    return calls, kept


def _check_noise_length(out_dir: Path, seconds: float) -> None:
    """A resumed set keeps its background recordings: refuse another `--noise-seconds` (it
    silently rewrote the noise existing runs trained with, or left a README saying 0 s)."""
    for kind in NOISE_TYPES:
        path = out_dir / BACKGROUND_DIR / f"{kind}.wav"
        if not path.is_file() or noise_ok(path, seconds):
            continue
        try:
            have = sf.info(path).duration
        except (RuntimeError, sf.LibsndfileError):
            continue  # unreadable: rewritten like a missing one
        raise UserError(
            f"'{path}' is {have:g} s long: this set was synthesized with --noise-seconds {have:g}, "
            f"not {seconds:g}; pass --noise-seconds {have:g} to resume it, or choose a new --out "
            "folder (its runs trained with that noise)"
        )


def _noise_calls(out_dir: Path, found: dict[str, EngineInfo], seed: int, seconds: float):
    if seconds <= 0:
        return []
    babble = {n: i for n, i in found.items() if n != "kokoro"} or found  # kokoro: 10x slower
    engines = engine_schedule(engine_weights(sorted(babble), 0.0), 8)
    voices = make_speakers(babble, seed + 7919, engines, split_schedule(engines))
    calls = []
    for kind in NOISE_TYPES:
        path = out_dir / BACKGROUND_DIR / f"{kind}.wav"
        if not (path.exists() and noise_ok(path, seconds)):
            calls.append((noise_task, (kind, seconds, seed, voices, str(path)), 0))
    return calls


def synthesize(
    out_dir: Path,
    *,
    words: list[str] | None = None,
    size: str = "quick",
    clips_per_word: int | None = None,
    speakers: int | None = None,
    seed: int = 0,
    workers: int = 0,
    noise_seconds: float | None = None,
    engines: list[str] | None = None,
    negatives: bool = True,
    accents: float = 0.0,
    accent_rules: int = MAX_RULES,
    progress: bool = True,
) -> SynthReport:
    """Synthesize a GSC-layout set under `out_dir` with every TTS voice found on this machine.

    Args:
        out_dir: dataset root; created if missing; valid clips already there are kept.
        words: keywords to say (default: the 10 commands plus GSC's other words, confusable and
            common words); `-` inside a word is spoken as a space (`hey-robot`). Custom words
            get a negative vocabulary of confusable neighbours and common words.
        size: `quick`, `medium` or `full` (`kws.data.synth.plan.SIZES`).
        clips_per_word: clips of each keyword (negatives scale with it); default: the size's.
        speakers: number of synthetic speakers; default: the size's.
        seed: same seed -> byte-identical WAVs.
        workers: processes; 0 = one per CPU core.
        noise_seconds: length of each `_background_noise_` recording (0 = none).
        engines: subset of `kws.data.synth.engines.ENGINES`; None = all found but the opt-in.
        negatives: with custom `words`, also synthesize the negative vocabulary.
        accents: fraction (0-1) of the espeak-ng and MBROLA speakers given a foreign accent
            (`kws.data.synth.accents`); 0 leaves every speaker as the engines say words.
        accent_rules: an accented speaker keeps 1 to this many phoneme rules (1 to
            len(RULES)); more rules, stronger accents.
        progress: show a progress bar and the engines found.

    Raises:
        UserError: an unknown size or engine, a missing engine, words that cannot be folder
            names, `accents` outside 0-1, `accent_rules` outside 1 to len(RULES), or an
            `out_dir` made with other options or seed, a file, or a non-empty folder that is
            no set.
    """
    start_s = time.perf_counter()
    if not 0.0 <= accents <= 1.0:
        raise UserError(f"accents is a fraction of the speakers, 0 to 1 (got {accents:g})")
    if not 1 <= accent_rules <= len(RULES):
        raise UserError(
            f"accent_rules is a number of rules, 1 to {len(RULES)} (got {accent_rules})"
        )
    out_dir = Path(out_dir)
    words = None if words is None else check_words(words)
    found = select_engines(engines)
    plan, choice = _plan(found, size, words, clips_per_word, speakers, seed, negatives)
    noise_seconds = SIZES[size].noise_seconds if noise_seconds is None else noise_seconds
    key = {
        "size": size,
        "words": words,
        "clips_per_word": clips_per_word,
        "speakers": len(plan.clips),
        "engines": sorted(found),
        "negatives": negatives,
    }
    if accents > 0:  # only then, so sets made before accents existed still resume
        key["accents"] = accents
    if accent_rules != MAX_RULES:
        key["accent_rules"] = accent_rules
    check_manifest(out_dir, seed, key)
    _check_noise_length(out_dir, noise_seconds)
    _announce(found, plan, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Words long negative speech must never contain: for the default vocabulary all 35 of GSC's.
    exclude = plan.keywords + [w for w in GSC_OTHER_WORDS if w not in plan.keywords and not words]
    manifest = {"format": FORMAT, "seed": seed, "plan": key, "keywords": plan.keywords,
                "exclude": exclude, "words": list(plan.word_counts)}  # fmt: skip
    atomic_write_json(out_dir / MANIFEST, manifest)
    remove_stale_temps(out_dir)
    voices = make_speakers(found, seed, plan.engines, plan.splits, accents, accent_rules)
    calls, kept = _speaker_calls(out_dir, plan, voices, seed)
    calls[:0] = _noise_calls(out_dir, found, seed, noise_seconds)  # babble is slow: start early
    written, errors = run_tasks(calls, workers or os.cpu_count() or 1, progress)
    for message in errors[:20]:
        log.warning("synthesis failed: %s", message)
    splits = write_split_lists(out_dir)
    per_engine = Counter()
    for speaker, said in zip(voices, plan.clips, strict=True):
        per_engine[speaker.engine] += len(said)
    report = SynthReport(
        engines_found={name: list(info.voices) for name, info in found.items()},
        num_clips=kept + written,
        num_failed=len(errors),
        words=list(plan.word_counts),
        out_dir=out_dir,
        num_created=written,
        num_speakers=sum(1 for said in plan.clips if said),
        size=size,
        keywords=plan.keywords,
        clips_per_engine=dict(per_engine),
        split_clips=splits,
        espeak_variants=list(found["espeak"].variants) if "espeak" in found else [],
        engine_versions={name: info.version for name, info in found.items()},
        negatives=choice,
        failures=errors[:20],
    )
    report.seconds = time.perf_counter() - start_s
    write_readme(out_dir, report, plan, voices, seed, key, noise_seconds)
    write_speakers(out_dir, plan, voices)
    return report


def _announce(found: dict[str, EngineInfo], plan: Plan, progress: bool) -> None:
    lines = [f"{name}: {', '.join(info.voices)}" for name, info in found.items()]
    if "espeak" in found:
        lines.append(f"espeak variants: {len(found['espeak'].variants)}")
    message = (
        f"TTS engines and voices used -> {'; '.join(lines)}. Plan: {plan.num_clips} clips of "
        f"{len(plan.word_counts)} words by {len(plan.clips)} speakers"
    )
    log.info(message)
    if progress:
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False)
