"""Vocoded copies of a set's training speakers: an experiment on held-out-engine transfer.

Flite's clustergen voices (awb, rms, slt) are statistical parametric synthesis: a vocoder
rebuilds speech from a smoothed spectral envelope, F0 and aperiodicity. A DS-CNN-S that never
heard flite names 94.7% of flite's diphone (kal) commands right, but only 82.3% of the same
clips after a WORLD analysis-resynthesis round trip (n = 300), so vocoder artefacts alone cost
it ~12 points. This script writes, for every training clip of the named engines, a WORLD-vocoded
copy (Morise et al. 2016, via `pyworld`) as a new speaker of the same engine, each speaker with
its own draw of envelope smoothing, aperiodicity, F0 and formant scaling, so a model can hear
vocoded speech without hearing the held-out engine. The copies are new speakers, so GSC's hash
rule splits them like any (about three quarters are training speakers); `kws data merge BASE
OUT_OF_THIS --out MERGED` adds those, and only those, to BASE's training split.

Outcome (recipes/README.md, "Where the gaps are, voice by voice"): a model trained with them
no longer minds WORLD resynthesis, but flite's clustergen voices did not move; on held-out
Kokoro the copies add a few points, within their interval.

    python recipes/transfer/vocode_set.py data/synth_medium --out data/world_part \
        --engines espeak festival [--seed 0] [--f0-scale LO HI] [--formant-scale LO HI] \
        [--wobble LO HI] [--limit N]

Needs `pip install pyworld "setuptools<80"` (not a kws dependency: it is an experiment).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.progress import track

from kws.data.audio import load_audio
from kws.data.gsc import index_folder

RATE_HZ = 16000
FRAME_MS = 5.0


def _settings(
    speaker: str, seed: int, f0_scale=(0.85, 1.2), formant_scale=(0.92, 1.08), wobble=(0.0, 0.0)
) -> dict:
    """One speaker's vocoder draw, from its id and the seed (so a rerun writes the same); F0
    scale log-uniform, formant scale and formant wobble uniform in the given (low, high)
    ranges."""
    digest = hashlib.sha256(f"{seed}:{speaker}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return {
        "cepstra": int(rng.choice([0, 24, 32, 48])),  # 0: envelope as analysed
        "aperiodicity": float(rng.uniform(0.3, 1.3)),
        "f0_scale": float(np.exp(rng.uniform(*np.log(f0_scale)))),
        "formant_scale": float(rng.uniform(*formant_scale)),
        "id": digest[8:12].hex(),
        "wobble": float(rng.uniform(*wobble)),  # drawn last: older draws stay as they were
    }


def _smooth(envelope: np.ndarray, cepstra: int) -> np.ndarray:
    """Keep the first `cepstra` real-cepstrum coefficients of each frame's power envelope."""
    if not cepstra:
        return envelope
    cep = np.fft.irfft(np.log(envelope + 1e-12), axis=1)
    cep[:, cepstra:-cepstra] = 0.0
    return np.exp(np.fft.rfft(cep, axis=1).real)


def warp_envelope(envelope: np.ndarray, scale: float) -> np.ndarray:
    """Scale the envelope's frequency axis (formants move by `scale`)."""
    bins = np.arange(envelope.shape[1])
    return np.stack([np.interp(bins / scale, bins, frame) for frame in envelope])


# Knots of the formant wobble (Hz): the F1, F2 and F3 regions move independently, the band's
# ends stay put, so each vowel's formant pattern (not only the vocal-tract length) changes.
WOBBLE_KNOTS_HZ = (0.0, 500.0, 1500.0, 2500.0, 4000.0, RATE_HZ / 2)
WOBBLE_MS = 100.0  # how fast the formant targets drift (Gaussian smoothing of the noise)


def wobble_envelope(envelope: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    """(frames, bins) power envelope -> the same with the 500, 1,500 and 2,500 Hz regions each
    moved by its own factor `exp(depth * n(t))`, n a unit-variance Gaussian noise smoothed over
    ~`WOBBLE_MS`: formant targets and transitions that drift like another voice's. depth 0
    returns the envelope unchanged; the frequency map is kept increasing."""
    if depth <= 0:
        return envelope
    frames, bins = envelope.shape
    sigma = WOBBLE_MS / FRAME_MS / 2
    taps = np.arange(-int(3 * sigma), int(3 * sigma) + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    noise = rng.standard_normal((3, frames + 2 * len(taps)))
    noise = np.stack([np.convolve(row, kernel, "same") for row in noise])[:, len(taps) : -len(taps)]
    noise /= np.sqrt((kernel**2).sum())
    # knots in bins as the wobble_part set was made (bins / Nyquist: 0.2% above warp_envelope's
    # (bins - 1) / Nyquist; kept so the set's command reproduces it)
    knots = np.array(WOBBLE_KNOTS_HZ) * bins / (RATE_HZ / 2 + 1e-9)
    grid = np.arange(bins, dtype=float)
    out = np.empty_like(envelope)
    for t in range(frames):
        moved = knots.copy()
        moved[1:4] *= np.exp(depth * noise[:, t])
        for i in (3, 2, 1):  # keep the map increasing: each knot at least one bin below the next
            moved[i] = min(moved[i], moved[i + 1] - 1.0)
        moved[1:4] = np.maximum(moved[1:4], np.arange(1.0, 4.0))  # and above the one before
        # output frequency moved[i] shows what the source had at knots[i]
        out[t] = np.interp(np.interp(grid, moved, knots), grid, envelope[t])
    return out


def vocode(audio: np.ndarray, settings: dict, clip_seed: int = 0) -> np.ndarray:
    """(samples,) float32 at 16 kHz -> the same length, WORLD-resynthesized with `settings`
    (`clip_seed` draws the clip's formant wobble)."""
    import pyworld

    x = audio.astype(np.float64)
    f0, times = pyworld.dio(x, RATE_HZ, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, times, RATE_HZ)
    envelope = pyworld.cheaptrick(x, f0, times, RATE_HZ)
    aperiodicity = pyworld.d4c(x, f0, times, RATE_HZ)
    envelope = warp_envelope(_smooth(envelope, settings["cepstra"]), settings["formant_scale"])
    wobble = np.random.default_rng(clip_seed)
    envelope = wobble_envelope(envelope, settings.get("wobble", 0.0), wobble)
    aperiodicity = np.clip(aperiodicity * settings["aperiodicity"], 0.0, 1.0)
    y = pyworld.synthesize(f0 * settings["f0_scale"], envelope, aperiodicity, RATE_HZ, FRAME_MS)
    y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
    peak_in, peak_out = np.abs(x).max(), np.abs(y).max()
    return (y * (peak_in / peak_out if peak_out > 0 else 0.0)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="GSC-layout set whose training clips to vocode")
    parser.add_argument("--out", type=Path, required=True, help="new folder (must not exist)")
    parser.add_argument("--engines", nargs="+", required=True, help="speaker-id prefixes")
    parser.add_argument("--seed", type=int, default=0)
    ranges = {  # option: (default, help); each speaker draws its own value in [LO, HI]
        "--f0-scale": ((0.85, 1.2), "range of each speaker's F0 factor (log-uniform)"),
        "--formant-scale": ((0.92, 1.08), "range of each speaker's formant factor"),
        "--wobble": ((0.0, 0.0), "range of each speaker's formant wobble depth (0: none)"),
    }
    for option, (default, text) in ranges.items():
        parser.add_argument(option, type=float, nargs=2, default=default, metavar=("LO", "HI"),
                            help=text)  # fmt: skip
    parser.add_argument("--limit", type=int, default=0, help="at most this many clips (0: all)")
    args = parser.parse_args(argv)
    try:
        import pyworld  # noqa: F401
    except ImportError as error:
        sys.exit(f'error: {error}; install it with `pip install pyworld "setuptools<80"`')
    if args.out.exists():
        sys.exit(f"error: '{args.out}' exists; name a new folder")
    clips = [c for c in index_folder(args.root).clips
             if c.split == "training" and c.speaker.split("-")[0] in args.engines]  # fmt: skip
    if args.limit:
        order = np.random.default_rng(args.seed).permutation(len(clips))[: args.limit]
        clips = [clips[i] for i in sorted(order)]
    tmp = args.out.with_name(args.out.name + ".partial")
    for clip in track(clips, description="vocoding"):
        settings = _settings(
            clip.speaker, args.seed, args.f0_scale, args.formant_scale, args.wobble
        )
        engine = clip.speaker.split("-")[0]
        name = clip.path.name.replace(clip.speaker, f"{engine}-{settings['id']}")
        dst = tmp / clip.word / name
        if dst.exists():
            continue  # resumable: a rerun skips what is done
        clip_seed = int.from_bytes(hashlib.sha256(f"{args.seed}:{name}".encode()).digest()[:8])
        audio = vocode(load_audio(clip.path, RATE_HZ), settings, clip_seed)
        dst.parent.mkdir(parents=True, exist_ok=True)
        part = dst.with_suffix(".tmp.wav")
        sf.write(part, np.clip(audio, -1, 1), RATE_HZ, subtype="PCM_16")
        part.rename(dst)
    tmp.rename(args.out)
    print(f"wrote {len(clips)} vocoded clips to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
