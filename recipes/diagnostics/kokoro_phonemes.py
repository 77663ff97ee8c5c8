"""A/B of Kokoro's phoneme input: espeak-ng's raw IPA against Kokoro's own symbols.

`kws data synth` feeds Kokoro-82M the symbols it was trained on (`kokoro_phonemes`); sets built
before that fed espeak-ng's raw IPA. This speaks the same words with the same new Kokoro
speakers (`kws.data.synth.speakers.make_speaker`, seed `--seed`, so none of a built set's), both
ways, through the same signal chain with the same draws (room, microphone, level, noise), and
asks each run's model for the word: per-word accuracy for each input and the paired difference
(own symbols minus raw IPA, mean +- 95% normal interval over the clip pairs). Usage:

    python recipes/diagnostics/kokoro_phonemes.py RUN [RUN ...] [--speakers 80] [--seed 778]
        [--words yes no up down left right on off stop go] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from kws.data.synth import kokoro
from kws.data.synth.acoustics import impulse_response
from kws.data.synth.chain import render_clip
from kws.data.synth.engines import discover
from kws.data.synth.speakers import make_speaker
from kws.features import compute_features
from kws.stream.backends import load_backend

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
INPUTS = {"raw_ipa": kokoro.phonemize, "kokoro_symbols": kokoro.kokoro_phonemes}


def spoken_clips(words: list[str], speakers: int, seed: int):
    """Yield `(speaker index, word index, {input: clip (16000,) int16})`: one speaker, room and
    draw generator per clip, shared by both inputs, so only the phonemes differ."""
    kokoro.require_kokoro()
    info = discover()["kokoro"]
    for i in range(speakers):
        speaker = make_speaker(info, info.voices[i % len(info.voices)], seed, i)
        style = kokoro.style_table(speaker.blend, speaker.style_noise, speaker.seed)
        impulse = impulse_response(speaker.room, speaker.seed)
        spelled = {name: phonemes(words, speaker.voice) for name, phonemes in INPUTS.items()}
        for k in range(len(words)):
            clips = {}
            for name, ipa in spelled.items():
                audio = kokoro.synthesize(ipa[k], style, speaker.speed)
                rng = np.random.default_rng([seed, i, k])
                clips[name] = render_clip(audio, kokoro.SAMPLE_RATE_HZ, speaker, rng, impulse)
            yield i, k, clips


def correct_table(runs: list[str], words: list[str], speakers: int, seed: int) -> dict:
    """`{run: {input: (speakers, words) bool array}}`: was each clip called its word."""
    backends = {run: load_backend("torch", run) for run in runs}
    table = {run: {name: np.zeros((speakers, len(words)), bool) for name in INPUTS}
             for run in runs}  # fmt: skip
    for i, k, clips in spoken_clips(words, speakers, seed):
        for name, clip in clips.items():
            x = torch.from_numpy(clip.astype(np.float32) / 32768.0)[None]
            for run, backend in backends.items():
                posteriors = backend(compute_features(x, backend.feature_cfg).numpy())
                table[run][name][i, k] = backend.labels[int(np.argmax(posteriors))] == words[k]
    return table


def summary(table: dict, words: list[str]) -> dict:
    """Per run: each input's accuracy overall and per word, and the paired difference."""
    out = {}
    for run, by_input in table.items():
        diff = (by_input["kokoro_symbols"].astype(float) - by_input["raw_ipa"]).ravel()
        half = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
        out[run] = {
            name: {"accuracy": float(ok.mean()), "n": int(ok.size),
                   "per_word": dict(zip(words, ok.mean(axis=0).round(3).tolist()))}
            for name, ok in by_input.items()
        }  # fmt: skip
        out[run]["paired_points"] = {"mean": 100 * float(diff.mean()), "half_width": 100 * half}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders whose models judge the clips")
    parser.add_argument("--speakers", type=int, default=80, help="new Kokoro speakers")
    parser.add_argument("--seed", type=int, default=778, help="speaker seed (not a set's)")
    parser.add_argument("--words", nargs="+", default=list(WORDS), help="words to speak")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = summary(correct_table(args.runs, args.words, args.speakers, args.seed), args.words)
    for run, row in result.items():
        print(run)
        for name in INPUTS:
            words = " ".join(f"{w} {a:.2f}" for w, a in row[name]["per_word"].items())
            print(f"  {name:15s} {100 * row[name]['accuracy']:.1f}% (n = {row[name]['n']}): "
                  f"{words}")  # fmt: skip
        paired = row["paired_points"]
        print(
            f"  own symbols - raw IPA: {paired['mean']:+.1f} +- {paired['half_width']:.1f} "
            "points (paired)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
