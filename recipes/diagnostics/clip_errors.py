"""Where a model's command errors are: clean clips per speaker group, and clips under noise.

Two tables for a run's model (its fastest backend: the ONNX file `kws export` wrote, else the
checkpoint), both over one split's command clips (the model's keyword labels) of a GSC-layout
folder:

1. Clean: every command clip as stored (its own room and microphone noise, nothing added):
   accuracy per speaker group (the speaker id before its `-`: the TTS engine of a synthesized
   set), per word, the most common confusions, and the speakers with the most errors.
2. Noise: `--noise-clips` of those clips (a seeded sample) with each `_background_noise_` file
   mixed at 20, 10, 5 and 0 dB SNR against the clip's RMS (the benchmark's definition,
   `kws.stream.benchmark`): accuracy per noise file and SNR.

Accuracies carry n and their 95% Wilson interval. Usage:

    python recipes/diagnostics/clip_errors.py RUN --data data/synth_medium [--split testing]
        [--noise-clips 300] [--seed 0] [--backend torch|onnx|tflite] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch

from kws.data.audio import load_audio
from kws.data.gsc import index_clips
from kws.features import compute_features
from kws.stats import format_accuracy
from kws.stream.backends import load_backend
from kws.stream.benchmark import speaker_group
from kws.stream.recognize import is_keyword
from kws.stream.testset import background_files

SNRS_DB = (20.0, 10.0, 5.0, 0.0)
RATE_HZ = 16000


def _clip(path: Path) -> np.ndarray:
    audio = load_audio(path, RATE_HZ)[:RATE_HZ]
    return np.pad(audio, (0, RATE_HZ - len(audio))).astype(np.float32)


def _predict(backend, audio: np.ndarray) -> str:
    features = compute_features(torch.from_numpy(audio)[None], backend.feature_cfg).numpy()
    return backend.labels[int(np.argmax(backend(features)))]


def clean_table(backend, clips) -> dict:
    """Accuracy per speaker group and word, confusions and the worst speakers, clean clips."""
    tally = collections.defaultdict(lambda: [0, 0])
    confusions, per_speaker = collections.Counter(), collections.defaultdict(lambda: [0, 0])
    for clip in clips:
        said = _predict(backend, _clip(clip.path))
        ok = said == clip.word
        for key in (f"group {speaker_group(clip.speaker)}", f"word {clip.word}", "all"):
            tally[key][0] += ok
            tally[key][1] += 1
        per_speaker[clip.speaker][0] += not ok
        per_speaker[clip.speaker][1] += 1
        if not ok:
            confusions[f"{clip.word} -> {said}"] += 1
    worst = sorted(per_speaker.items(), key=lambda kv: (-kv[1][0] / kv[1][1], kv[0]))[:8]
    return {
        "accuracy": {k: {"correct": c, "n": n} for k, (c, n) in sorted(tally.items())},
        "confusions": dict(confusions.most_common(12)),
        "worst_speakers": {s: {"errors": e, "n": n} for s, (e, n) in worst},
    }


def noise_table(backend, clips, seed: int) -> dict:
    """Accuracy per background file and SNR (dB) on the same clips."""
    rng = np.random.default_rng(seed)
    audios = [_clip(clip.path) for clip in clips]  # read once, mixed 4 x files times
    out = {}
    for path in background_files(clips[0].path.parent.parent):
        noise = load_audio(path, RATE_HZ)
        if len(noise) < RATE_HZ:
            continue
        row = {}
        for snr in SNRS_DB:
            correct = 0
            for clip, audio in zip(clips, audios, strict=True):
                start = rng.integers(0, len(noise) - RATE_HZ + 1)
                piece = noise[start : start + RATE_HZ]
                gain = np.sqrt(np.mean(audio**2)) / (np.sqrt(np.mean(piece**2)) + 1e-12)
                mixed = np.clip(audio + piece * gain / 10 ** (snr / 20), -1, 1)
                correct += _predict(backend, mixed.astype(np.float32)) == clip.word
            row[f"{snr:g}"] = {"correct": correct, "n": len(clips)}
        out[path.stem] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run folder with an ONNX export (kws export RUN)")
    parser.add_argument("--data", required=True, help="GSC-layout folder the run was trained on")
    parser.add_argument("--split", default="testing", choices=("training", "validation", "testing"))
    parser.add_argument("--noise-clips", type=int, default=300, help="clips mixed with noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("torch", "onnx", "tflite"), help="default: fastest")
    parser.add_argument("--json", help="also write the tables here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    backend = load_backend(args.backend, args.run)
    commands = {w for w in backend.labels if is_keyword(w)}
    clips = [c for c in index_clips(args.data) if c.split == args.split and c.word in commands]
    if not clips:
        sys.exit(f"no {args.split}-split command clips under '{args.data}'")
    clean = clean_table(backend, clips)
    sample = [clips[i] for i in np.random.default_rng(args.seed).permutation(len(clips))]
    noisy = noise_table(backend, sample[: args.noise_clips], args.seed)
    print(f"clean {args.split}-split command clips of {args.data}:")
    for key, c in clean["accuracy"].items():
        print(f"  {key}: {format_accuracy(c['correct'], c['n'])}")
    print("  confusions:", ", ".join(f"{k} {v}" for k, v in clean["confusions"].items()))
    print("  worst speakers:", ", ".join(
        f"{s} {w['errors']}/{w['n']}" for s, w in clean["worst_speakers"].items()))  # fmt: skip
    print(f"with background noise ({args.noise_clips} clips; SNR dB: accuracy):")
    for name, row in noisy.items():
        print(f"  {name}: " + ", ".join(
            f"{snr} {100 * c['correct'] / c['n']:.1f}%" for snr, c in row.items()))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"clean": clean, "noise": noisy}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
