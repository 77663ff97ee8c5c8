"""Synthesis benchmark: raw TTS cost per clip of every engine found, side by side in one run.

`kws data synth` spends most of its time in the engines (rooms, microphones and noise are
cheap). For each engine this machine has, a few seeded speakers each say the same command and
unknown words through `kws.data.synth.speakers.speak`, the call the synthesizer makes (festival:
one process per speaker; kokoro and piper: one espeak-ng phonemizer call per speaker, then the
model per word). Model loading (kokoro, piper) happens before the clock starts, as it does once
per worker process. One process, one thread.

    python benchmarks/synth_engines.py [--speakers 3] [--out benchmarks/results/synth_engines.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from machine import describe

from kws.data.synth.engines import discover
from kws.data.synth.speakers import make_speaker, speak
from kws.io import atomic_write_text

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
         "marvin", "sheila", "backward", "follow", "visual", "happy"]  # fmt: skip


def bench(info, speakers: int, tmp: Path) -> dict:
    """Seconds of TTS per clip and seconds of audio per clip for one engine."""
    voices = [make_speaker(info, info.voices[i % len(info.voices)], 0, i) for i in range(speakers)]
    speak(voices[0], WORDS[:1], tmp)  # load the model (neural engines) outside the clock
    start = time.perf_counter()
    said = [r for v in voices for r in speak(v, WORDS, tmp)]
    seconds = time.perf_counter() - start
    good = [r for r in said if not isinstance(r, Exception)]
    audio_s = sum(len(a) / rate for a, rate in good) / max(len(good), 1)
    return {"clips": len(good), "failed": len(said) - len(good), "s_per_clip": seconds / len(said),
            "audio_s": audio_s}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kws-bench-synth-") as tmp:
        for name, info in discover().items():
            r = bench(info, args.speakers, Path(tmp))
            rows.append(
                f"| {name} | {r['clips']} ({r['failed']} failed) | {1000 * r['s_per_clip']:.0f} "
                f"| {1 / r['s_per_clip']:.1f} | {r['audio_s']:.2f} |"
            )
    text = "\n".join([
        f"Machine: {describe()}; {args.speakers} speakers x {len(WORDS)} words per engine.",
        "",
        "| engine | clips | ms of TTS per clip | clips/s (one process) | mean clip audio (s) |",
        "|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
