"""The dataset's README.md and speakers.csv: how the synthesized set was made, so it can be
reproduced, and who says each clip, so errors can be traced to a voice."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from kws.data.gsc import SPEAKERS_CSV
from kws.data.synth.acoustics import __doc__ as ACOUSTICS_DOC
from kws.data.synth.chain import __doc__ as CHAIN_DOC
from kws.data.synth.kokoro import LICENSE as KOKORO_LICENSE
from kws.data.synth.noise import NOISE_TYPES
from kws.data.synth.piper import LICENSE as PIPER_LICENSE
from kws.data.synth.plan import Plan
from kws.data.synth.speakers import Speaker
from kws.io import atomic_write_text

LICENSES = {
    "espeak": "espeak-ng: GPL-3.0 program, run as a separate process",
    "flite": "flite and its voices: BSD-style (CMU)",
    "festival": "festival and festvox voices: BSD-style / free (Edinburgh, CMU)",
    "kokoro": KOKORO_LICENSE,
    "piper": PIPER_LICENSE,
    "mbrola": (
        "MBROLA: AGPL-3.0 program, run by espeak-ng as a separate process; diphone databases "
        "(Faculte Polytechnique de Mons and their owners): free to use and copy with the mbrola "
        "program, not to be sold or put into a product that is sold (each database's terms: "
        "/usr/share/doc/mbrola-*/copyright); a set with MBROLA speakers carries those terms"
    ),
    "katakana": (
        "MBROLA's Japanese voices jp1, jp2, jp3 read by espeak-ng (GPL-3.0) and mbrola "
        "(AGPL-3.0), each run as a separate process; the diphone databases: free to use and "
        "copy with the mbrola program, not to be sold or put into a product that is sold "
        "(/usr/share/doc/mbrola-jp*/copyright); a set with katakana speakers carries those terms"
    ),
    "rhvoice": (
        "RHVoice (Olga Yakovleva): RHVoice-test GPL-2.0+, run as a separate process, on the "
        "LGPL-2.1+ library; voices alan, bdl, clb, slt: LGPL-2.1+; voices evgeniy-eng and "
        "lyubov (Artem Plaksin, Sergey Parshakov et al.): CC-BY-NC-ND-4.0, i.e. attribution, "
        "non-commercial use, no derivatives of the voices "
        "(/usr/share/doc/rhvoice-english/copyright): a set with their speakers carries those "
        "terms"
    ),
    "pico": (
        "SVOX Pico (SVOX AG, the Android Open Source Project): pico2wave and its library "
        "Apache-2.0, run as a separate process; its lingware (the voices' data files) is "
        "redistributable but ships without its source, so Debian carries it in non-free "
        "(/usr/share/doc/libttspico-data/copyright)"
    ),
}


def _body(doc: str) -> str:
    return " ".join(doc.split("\n\n", 1)[1].split())


def _command(out_dir: Path, seed: int, key: dict, noise_seconds: float) -> str:
    command = f"kws data synth --out {out_dir} --seed {seed} --size {key['size']}"
    if key["clips_per_word"] is not None:
        command += f" --clips-per-word {key['clips_per_word']}"
    command += f" --noise-seconds {noise_seconds:g} --engines {' '.join(key['engines'])}"
    if key["words"] is not None:
        command += f" --words {' '.join(key['words'])}"
        if not key["negatives"]:
            command += " --no-negatives"
    if key.get("accents"):
        command += f" --accents {key['accents']:g}"
    return command


def _negatives_section(report) -> str:
    choice = report.negatives
    if choice is None:
        return ""
    lines = [
        "## Negative vocabulary (chosen for the keywords)",
        "",
        "Confusable neighbours by phoneme edit distance (espeak-ng pronunciations of the most "
        "frequent English words, wordfreq); words that spell or pronounce a keyword are never "
        "chosen.",
        "",
    ]
    for found in choice.neighbours:
        lines.append(
            f"- {found.keyword}: same onset {', '.join(found.onset) or '-'}; same rhyme "
            f"{', '.join(found.rhyme) or '-'}; same syllable count "
            f"{', '.join(found.syllables) or '-'}"
        )
    lines.append(f"- common words: {' '.join(choice.common)}")
    return "\n".join(lines) + "\n\n"


def _accent_line(used: list[Speaker]) -> str:
    accented = [s for s in used if s.accent]
    if not accented:
        return ""
    rules = Counter(rule for s in accented for rule in s.accent)
    return (
        f"\n{len(accented)} espeak-ng / MBROLA speakers have a foreign accent, phoneme rules "
        "fed to espeak-ng as phoneme input (`kws.data.synth.accents`; speakers per rule: "
        + ", ".join(f"{r} {n}" for r, n in sorted(rules.items()))
        + ")."
    )


def write_readme(
    out_dir: Path,
    report,
    plan: Plan,
    speakers: list[Speaker],
    seed: int,
    key: dict,
    noise_seconds: float,
) -> Path:
    """Write `out_dir/README.md` (no timestamps, so reruns with one seed leave it unchanged)."""
    used = [s for s, said in zip(speakers, plan.clips, strict=True) if said]
    per_engine = Counter(s.engine for s in used)
    voices = Counter(f"{s.engine}/{s.voice}" for s in used)
    total = max(sum(report.clips_per_engine.values()), 1)
    engines = "\n".join(
        f"- {name} ({report.engine_versions.get(name, 'version unknown')}): voice(s) "
        f"{', '.join(voices_)}; {per_engine[name]} speakers, "
        f"{report.clips_per_engine.get(name, 0)} clips "
        f"({100 * report.clips_per_engine.get(name, 0) / total:.1f}%)"
        for name, voices_ in report.engines_found.items()
    )
    licenses = "\n".join(f"- {LICENSES[name]}" for name in report.engines_found if name in LICENSES)
    repeats = sum(1 for said in plan.clips for _, n in said if n > 0)
    counts = " ".join(f"{w} {n}" for w, n in plan.word_counts.items())
    text = f"""# Synthesized speech commands (GSC layout)

Made by `kws data synth` with seed {seed}, size `{key["size"]}`: {plan.num_clips} clips of
{len(plan.word_counts)} words by {len(used)} synthetic speakers, text-to-speech only (no
recordings). As in Speech Commands, a speaker says some of the words, {repeats} clips are a
repeat by the same speaker (`_nohash_1`, ...). Regenerate (or resume) with

    {_command(out_dir, seed, key, noise_seconds)}

A speaker is one combination of engine, voice, variant or style blend, pitch, speed,
vocal-tract warp, room, microphone, level and noise; its id is `<engine>-<8 hex>`, so GSC's hash
split keeps all of its clips in one split and a whole engine can be held out by id prefix.

## Engines, voices and their share

{engines}
- espeak-ng variants available: {", ".join(report.espeak_variants) or "none"}

Speakers per voice: {", ".join(f"{v} {n}" for v, n in sorted(voices.items()))}.
Kokoro speakers are random blends of the shipped style vectors ({
        ", ".join(sorted({name for s in used for name, _ in s.blend}) or ["none used"])
    }) plus noise on the
style vector; their English is mildly accented.{_accent_line(used)}

## Licences

{licenses}

## Signal chain

{_body(CHAIN_DOC)}

{_body(ACOUSTICS_DOC)}

## Layout

- `<word>/<speaker>_nohash_<n>.wav`: 16 kHz, mono, 16-bit PCM, exactly 16000 samples.
- `_background_noise_/`: {", ".join(NOISE_TYPES)} ({noise_seconds:g} s each; none if 0).
- `speakers.csv`: one row per speaker (id, engine, voice, variant, accent rules, style blend,
  pitch, speed, warp, room, microphone, level, noise, clips), to trace errors to a voice.
- `validation_list.txt`, `testing_list.txt`: GSC's hash rule over every clip present
  ({report.split_clips["training"]} training, {report.split_clips["validation"]} validation,
  {report.split_clips["testing"]} testing).

Keywords: {" ".join(report.keywords)}.

Clips per word: {counts}.

{
        _negatives_section(report)
    }Byte-identical regeneration needs the same engine versions (listed above).
Synthesized speech has a domain gap to real recordings; measure transfer before relying on it.
"""
    return atomic_write_text(out_dir / "README.md", text)


SPEAKER_COLUMNS = (
    "id", "engine", "voice", "variant", "accent", "blend", "pitch", "speed", "warp",
    "intonation", "style_noise", "rt60_s", "distance_m", "mic_lowpass_hz", "mic_tilt_db",
    "level_dbfs", "noise_kind", "snr_db", "clips",
)  # fmt: skip


def write_speakers(out_dir: Path, plan: Plan, speakers: list[Speaker]) -> Path:
    """Write `out_dir/speakers.csv`: one row per speaker with clips (columns `SPEAKER_COLUMNS`).

    `accent` joins the speaker's phoneme rules with `+`; `blend` is `style:weight` pairs joined
    with `+`; numbers are rounded for reading (the id, not the row, is what reproduces a voice).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPEAKER_COLUMNS)
    for s, said in zip(speakers, plan.clips, strict=True):
        if not said:
            continue
        writer.writerow([
            s.id, s.engine, s.voice, s.variant, "+".join(s.accent),
            "+".join(f"{name}:{weight:.3f}" for name, weight in s.blend),
            f"{s.pitch:g}", f"{s.speed:.3f}", f"{s.warp:.3f}", f"{s.intonation:.3f}",
            f"{s.style_noise:.3f}", f"{s.room.rt60_s:.3f}", f"{s.room.distance_m:.2f}",
            f"{s.mic.lowpass_hz:.0f}", f"{s.mic.tilt_db:.1f}", f"{s.level_dbfs:.1f}",
            s.noise_kind, f"{s.snr_db:.1f}", len(said),
        ])  # fmt: skip
    return atomic_write_text(out_dir / SPEAKERS_CSV, buffer.getvalue())
