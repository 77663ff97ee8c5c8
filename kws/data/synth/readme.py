"""The dataset's README.md: how the synthesized set was made, so it can be reproduced."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kws.data.synth.chain import __doc__ as CHAIN_DOC
from kws.data.synth.noise import NOISE_TYPES
from kws.data.synth.speakers import Speaker
from kws.data.synth.words import DEFAULT_WORDS
from kws.io import atomic_write_text


def write_readme(
    out_dir: Path,
    report,
    speakers: list[Speaker],
    splits: dict[str, int],
    seed: int,
    clips_per_word: int,
    noise_seconds: float,
) -> Path:
    """Write `out_dir/README.md` (no timestamps, so reruns with one seed leave it unchanged)."""
    per_engine = Counter(s.engine for s in speakers)
    voices = Counter(f"{s.engine}/{s.voice}" for s in speakers)
    engines = "\n".join(
        f"- {name} ({report.engine_versions.get(name, 'version unknown')}): {len(voices_)} "
        f"voice(s): {', '.join(voices_)}; {per_engine[name]} speakers"
        for name, voices_ in report.engines_found.items()
    )
    command = f"kws data synth --out {out_dir} --seed {seed} --clips-per-word {clips_per_word}"
    command += f" --noise-seconds {noise_seconds:g} --engines {' '.join(report.engines_found)}"
    if report.words != DEFAULT_WORDS:
        command += f" --words {' '.join(report.words)}"
    chain = " ".join(CHAIN_DOC.split("\n\n", 1)[1].split())
    text = f"""# Synthesized speech commands (GSC layout)

Made by `kws data synth` with seed {seed}: {len(report.words)} words x {clips_per_word} synthetic
speakers (each says each word once), text-to-speech only (no recordings). Regenerate with

    {command}

A speaker is one combination of engine, voice, voice variant, pitch, speed, vocal-tract warp,
room and microphone; its id is `<engine>-<8 hex>`, so GSC's hash split keeps it in one split and
a whole engine can be held out by id prefix.

## Engines and voices found

{engines}
- espeak-ng variants available: {", ".join(report.espeak_variants) or "none"}

Speakers per voice: {", ".join(f"{v} {n}" for v, n in sorted(voices.items()))}.

## Signal chain

{chain}

## Layout

- `<word>/<speaker>_nohash_0.wav`: 16 kHz, mono, 16-bit PCM, exactly 16000 samples.
- `_background_noise_/`: {", ".join(NOISE_TYPES)} ({noise_seconds:g} s each; none if 0).
- `validation_list.txt`, `testing_list.txt`: GSC's hash rule over every clip present
  ({splits["training"]} training, {splits["validation"]} validation, {splits["testing"]} testing).

Words: {" ".join(report.words)}.

Byte-identical regeneration needs the same engine versions (listed above).
Synthesized speech has a domain gap to real recordings; measure transfer before relying on it.
"""
    return atomic_write_text(out_dir / "README.md", text)
