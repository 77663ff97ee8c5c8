"""Which part of a TTS voice's waveform a model fails on: clean words under WORLD factor swaps.

A model that never heard flite calls flite's diphone voices' commands right but half of its
clustergen voices' (awb, rms, slt) commands unknown words, although festival's HTS voice of the
same speaker as slt is among its training voices. This script says whether the failure sits in
the voice's excitation, intonation, timing, vocal-tract size or spectral contrast: it speaks
every command word with each named voice, clean (no room, microphone or noise; centred in one
second at a fixed RMS), under a grid of the engine's own prosody settings, analyses each clip
with WORLD (Morise et al. 2016, via `pyworld`) and rebuilds it with one factor changed:

    world        analysis-resynthesis only (the vocoder's own cost)
    ap x0.3      aperiodicity x 0.3 (less breathy, more buzzy excitation)
    f0 fall      the F0 contour replaced by a plain declarative fall at the clip's median F0
    f0 x0.8      F0 x 0.8
    slow x1.25   every frame held 1.25x as long (faster: x0.8)
    formants x0.9 / x1.1   the envelope's frequency axis scaled (vocal-tract length)
    contrast x0.5  the voiced log envelope pulled halfway to its utterance mean (the
                 over-smoothing of statistical parametric synthesis)

and prints each run's accuracy per voice and factor (n and a 95% Wilson interval), plus each
voice's global variance of the log envelope (0-4 kHz, voiced frames), the over-smoothing
measure of Toda & Tokuda 2007. A factor that lifts a failing voice to the passing voices'
level is where the failure sits; if none does, it is in the envelope's trajectories, i.e. how
the voice shapes each sound. `--pair A B` tests that directly on two voices of one speaker
(flite's clustergen slt and festival's HTS slt): each of A's clips is aligned to B's clip of the
same word (dynamic time warping of the log envelopes) and rebuilt twice, with A's envelope on
B's F0, aperiodicity and timing and the other way round. Results: recipes/README.md, "Where
the gaps are, voice by voice".

    python recipes/transfer/engine_factors.py RUN [RUN ...] \
        [--voices flite:kal flite:awb ... festival:cmu_us_slt_arctic_hts] [--json OUT.json]
        [--pair flite:slt festival:cmu_us_slt_arctic_hts]

Needs flite and festival (as `kws data synth` does) and `pip install pyworld "setuptools<80"`
(not a kws dependency: it is an experiment).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from vocode_set import FRAME_MS, RATE_HZ, warp_envelope

from kws.data.audio import resample
from kws.data.synth.engines import festival_batch, flite
from kws.features import compute_features
from kws.stats import format_accuracy
from kws.stream.backends import load_backend
from kws.stream.recognize import is_keyword

DEFAULT_VOICES = ("flite:kal", "flite:awb", "flite:rms", "flite:slt",
                  "festival:cmu_us_slt_arctic_hts", "festival:kal_diphone")  # fmt: skip
CLIP_RMS = 0.05  # about the stored clips' mean level
F0_FACTORS = (0.9, 1.0, 1.15)
STRETCHES = (0.9, 1.0, 1.15)
Analysis = tuple[np.ndarray, np.ndarray, np.ndarray]  # F0 (frames,), envelope, aperiodicity


def centre(audio: np.ndarray) -> np.ndarray:
    """(samples,) -> (16000,) float32 at RMS `CLIP_RMS`: padded to one second, centred, or its
    middle second (a clip slowed down stays centred as it grows)."""
    start = max(0, (len(audio) - RATE_HZ) // 2)
    audio = audio[start : start + RATE_HZ]
    pad = RATE_HZ - len(audio)
    audio = np.pad(audio, (pad // 2, pad - pad // 2))
    return (audio * CLIP_RMS / (np.sqrt(np.mean(audio**2)) + 1e-9)).astype(np.float32)


def falling_f0(f0: np.ndarray) -> np.ndarray:
    """The voiced frames' F0 replaced by a linear fall from 1.15x to 0.85x their median (Hz);
    unvoiced frames (0) stay unvoiced."""
    voiced = f0 > 0
    out = f0.copy()
    if voiced.any():
        out[voiced] = np.median(f0[voiced]) * np.linspace(1.15, 0.85, int(voiced.sum()))
    return out


def stretch_frames(analysis: Analysis, factor: float) -> Analysis:
    """Every frame held `factor` times as long (nearest frame; F0 and envelope untouched)."""
    frames = len(analysis[0])
    source = np.minimum(np.round(np.arange(round(frames * factor)) / factor), frames - 1)
    return tuple(np.ascontiguousarray(part[source.astype(int)]) for part in analysis)


def compress_contrast(f0: np.ndarray, envelope: np.ndarray, factor: float) -> np.ndarray:
    """Voiced frames' log envelope moved to `mean + factor * (log - mean)` over the utterance."""
    voiced = f0 > 0
    log = np.log(envelope + 1e-12)
    if voiced.any():
        mean = log[voiced].mean(axis=0)
        log[voiced] = mean + factor * (log[voiced] - mean)
    return np.exp(log)


def envelope_variance(f0: np.ndarray, envelope: np.ndarray, top_hz: float = 4000.0) -> float:
    """Mean over frequency bins up to `top_hz` of the voiced frames' log-envelope variance."""
    bins = int(envelope.shape[1] * top_hz / (RATE_HZ / 2))
    voiced = np.log(envelope[f0 > 0, :bins] + 1e-12)
    return float(voiced.var(axis=0).mean()) if len(voiced) > 1 else float("nan")


FACTORS: dict[str, Callable[[Analysis], Analysis]] = {
    "world": lambda a: a,
    "ap x0.3": lambda a: (a[0], a[1], a[2] * 0.3),
    "f0 fall": lambda a: (falling_f0(a[0]), a[1], a[2]),
    "f0 x0.8": lambda a: (a[0] * 0.8, a[1], a[2]),
    "slow x1.25": lambda a: stretch_frames(a, 1.25),
    "fast x0.8": lambda a: stretch_frames(a, 0.8),
    "formants x0.9": lambda a: (a[0], warp_envelope(a[1], 0.9), a[2]),
    "formants x1.1": lambda a: (a[0], warp_envelope(a[1], 1.1), a[2]),
    "contrast x0.5": lambda a: (a[0], compress_contrast(a[0], a[1], 0.5), a[2]),
}


def aligned_frames(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each frame of `target` (frames, bins) the frame of `source` dynamic time warping
    (librosa) pairs it with, on log envelopes up to 4 kHz: an index array (target frames,)."""
    import librosa

    bins = int(source.shape[1] * 4000 / (RATE_HZ / 2))
    logs = [np.log(e[:, :bins] + 1e-12).T for e in (source, target)]
    _, path = librosa.sequence.dtw(X=logs[0], Y=logs[1], metric="euclidean")
    index = np.zeros(len(target), dtype=int)
    for i, j in path[::-1]:  # from the start: where a target frame pairs with several, the last
        index[j] = i
    return index


def swap_envelopes(a: Analysis, b: Analysis) -> tuple[Analysis, Analysis]:
    """(A's envelope on B's F0, aperiodicity and timing; B's envelope on A's)."""
    a_on_b = (b[0], a[1][aligned_frames(a[1], b[1])], b[2])
    b_on_a = (a[0], b[1][aligned_frames(b[1], a[1])], a[2])
    return a_on_b, b_on_a


def _analyse(audio: np.ndarray) -> Analysis:
    import pyworld

    x = audio.astype(np.float64)
    f0, times = pyworld.dio(x, RATE_HZ, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, times, RATE_HZ)
    return f0, pyworld.cheaptrick(x, f0, times, RATE_HZ), pyworld.d4c(x, f0, times, RATE_HZ)


def _synthesize(analysis: Analysis) -> np.ndarray:
    import pyworld

    f0, envelope, aperiodicity = (np.ascontiguousarray(p, dtype=np.float64) for p in analysis)
    aperiodicity = np.clip(aperiodicity, 0.0, 1.0)
    return pyworld.synthesize(f0, envelope, aperiodicity, RATE_HZ, FRAME_MS).astype(np.float32)


def _classify(backend, audio: np.ndarray) -> str:
    features = compute_features(torch.from_numpy(audio)[None], backend.feature_cfg).numpy()
    return backend.labels[int(np.argmax(backend(features)))]


def speak(voice: str, words: list[str], tmp: Path) -> list[tuple[str, np.ndarray]]:
    """(word, clean 16 kHz audio) for every word under the prosody grid of `engine:name`:
    flite 3 F0 factors x 3 duration stretches, festival 3 stretches."""
    engine, name = voice.split(":", 1)
    clips = []
    for word in words:
        if engine == "flite":
            for f0, stretch in itertools.product(F0_FACTORS, STRETCHES):
                audio, rate = flite(word, name, f0, 1.0, stretch, tmp)
                clips.append((word, resample(audio, rate, RATE_HZ)))
        elif engine == "festival":
            for stretch in STRETCHES:
                [said] = festival_batch([word], name, stretch, tmp)
                if isinstance(said, Exception):
                    raise SystemExit(f"error: festival voice '{name}' failed on '{word}': {said}")
                clips.append((word, resample(said[0], said[1], RATE_HZ)))
        else:
            raise SystemExit(f"error: voice '{voice}': use flite:NAME or festival:NAME")
    return clips


def _pair(voices: list[str], words: list[str], backends: dict, tmp: Path) -> dict:
    """Envelope swaps between voice A's clips and B's middle clip of each word (`--pair`)."""
    a_clips = speak(voices[0], words, tmp)
    b_clips = speak(voices[1], words, tmp)
    per_word = len(b_clips) // len(words)
    reference = {w: _analyse(centre(b_clips[i * per_word + per_word // 2][1]))
                 for i, w in enumerate(words)}  # fmt: skip
    variants: dict[str, list] = {
        "A as spoken": [],
        "A's envelope on B": [],
        "B's envelope on A": [],
    }
    for word, audio in a_clips:
        a_on_b, b_on_a = swap_envelopes(_analyse(centre(audio)), reference[word])
        variants["A as spoken"].append(centre(audio))
        variants["A's envelope on B"].append(centre(_synthesize(a_on_b)))
        variants["B's envelope on A"].append(centre(_synthesize(b_on_a)))
    result = {}
    for run, backend in backends.items():
        row = result.setdefault(run, {})
        for name, audios in variants.items():
            right = sum(
                _classify(backend, x) == w for x, (w, _) in zip(audios, a_clips, strict=True)
            )
            row[name] = [right, len(a_clips)]
        print(f"{run} A={voices[0]} B={voices[1]}: " + "; ".join(
            f"{n} {format_accuracy(*row[n])}" for n in variants), flush=True)  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained runs (torch backend)")
    parser.add_argument("--voices", nargs="*", default=list(DEFAULT_VOICES),
                        help="engine:voice (flite or festival; none: --pair only)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument("--pair", nargs=2, metavar=("A", "B"),
                        help="swap envelopes between two voices of one speaker")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        import pyworld  # noqa: F401
    except ImportError as error:
        sys.exit(f'error: {error}; install it with `pip install pyworld "setuptools<80"`')
    torch.set_num_threads(1)
    backends = {str(run): load_backend("torch", run) for run in args.runs}
    words = [w for w in next(iter(backends.values())).labels if is_keyword(w)]
    table: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for voice in args.voices:
            clips = [(w, centre(a)) for w, a in speak(voice, words, Path(tmp))]
            analyses = [_analyse(audio) for _, audio in clips]
            gv = np.nanmean([envelope_variance(a[0], a[1]) for a in analyses])
            variants = {"as spoken": [audio for _, audio in clips]}
            for factor, change in FACTORS.items():
                variants[factor] = [centre(_synthesize(change(a))) for a in analyses]
            for run, backend in backends.items():
                row = table.setdefault(run, {}).setdefault(voice, {"envelope_variance": gv})
                for factor, audios in variants.items():
                    said = [_classify(backend, audio) for audio in audios]
                    right = sum(s == w for s, (w, _) in zip(said, clips, strict=True))
                    row[factor] = [right, len(clips)]
                print(f"{run} {voice} (envelope variance {gv:.1f}): " + "; ".join(
                    f"{f} {format_accuracy(*row[f])}" for f in variants), flush=True)  # fmt: skip
        if args.pair:
            table["pair"] = _pair(args.pair, words, backends, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
