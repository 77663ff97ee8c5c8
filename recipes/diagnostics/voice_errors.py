"""Which voices of one engine a model gets wrong: accuracy per voice, from the set's speakers.csv.

`kws evaluate RUN --holdout-engine ENGINE` gives one number for a whole engine; this splits it
by the voice each speaker was made with (`speakers.csv`, written by `kws data synth`), so a gap
can be traced to a kind of synthesis (flite's diphone voices kal and kal16 against its
statistical-parametric ones awb, rms and slt, say). Every clip of the engine's speakers, all
splits (the engine was held out), commands and unknown words separately; silence is left out.
Accuracies carry n and their 95% Wilson interval. Usage:

    python recipes/diagnostics/voice_errors.py RUN --data data/synth_medium --engine flite
        [--by voice|style] [--backend torch|onnx|tflite] [--json OUT.json]

`--by style` groups Kokoro speakers by the style vector with the largest weight in their blend.
`--world F0 FORMANTS` scores every clip after a WORLD analysis-resynthesis with its F0 and its
formants scaled by those factors (`recipes/transfer/vocode_set.py`; needs pyworld): `--world 1
1` measures the vocoder's own cost, `--world 0.6 0.87` whether a high voice is recognised once
it is brought down to a low one's pitch and vocal-tract size. `--warps W...` scores each clip
under several frequency warps of its power spectrum (`kws.features.warp_spectrum`, the VTLP
warp, here at test time) and `--combine` joins them: `mean` averages the posteriors, `confident`
takes the warp whose top posterior is highest, `speaker` the warp whose top posterior is
highest on average over the speaker's clips (unsupervised vocal tract length normalisation per
clip or per speaker). The warped front end is the torch one, whatever `--backend` runs it.
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

from kws.data.audio import load_audio
from kws.data.gsc import SPEAKERS_CSV, index_clips
from kws.features import TorchFrontEnd
from kws.stats import format_accuracy
from kws.stream.backends import load_backend
from kws.stream.recognize import is_keyword

RATE_HZ = 16000
UNKNOWN = "_unknown_"


def _style(blend: str) -> str:
    """'jf_alpha:0.141+jm_kumo:0.693' -> 'jm_kumo': the blend's largest weight."""
    pairs = [part.rsplit(":", 1) for part in blend.split("+") if part]
    return max(pairs, key=lambda pair: float(pair[1]))[0] if pairs else "(no blend)"


def _voices(data: Path, engine: str, by: str = "voice") -> dict[str, str]:
    path = data / SPEAKERS_CSV
    if not path.is_file():
        sys.exit(f"error: '{path}' does not exist; rerun the set's `kws data synth` command (its "
                 "README has it: valid clips are kept) to write it")  # fmt: skip
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["engine"] == engine]
    return {r["id"]: _style(r["blend"]) if by == "style" else r["voice"] for r in rows}


def _vocoder(f0_scale: float, formant_scale: float):
    """audio -> audio: WORLD resynthesis with F0 and formants scaled (vocode_set.py's)."""
    path = Path(__file__).resolve().parents[1] / "transfer" / "vocode_set.py"
    spec = importlib.util.spec_from_file_location("vocode_set", path)
    vocode_set = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vocode_set)
    settings = {"cepstra": 0, "aperiodicity": 1.0, "f0_scale": f0_scale,
                "formant_scale": formant_scale}  # fmt: skip
    return lambda audio: vocode_set.vocode(audio, settings)


def warped_posteriors(backend, front_end, audio: np.ndarray, warps=None) -> np.ndarray:
    """`(warps, classes)` posteriors of a 1 s clip, one per frequency warp of its power
    spectrum (`front_end`: a `TorchFrontEnd` of the backend's features); no warps: `(1,
    classes)`, the clip as it is."""
    batch = torch.from_numpy(audio)[None].expand(len(warps or [None]), -1)
    warp = torch.tensor(warps, dtype=torch.float32) if warps else None
    features = front_end(batch, warp).numpy()
    return np.stack([backend(row[None]) for row in features])


def join_warps(posteriors: np.ndarray, speakers: list[str], combine: str) -> np.ndarray:
    """`(clips, warps, classes)` -> `(clips, classes)`: the mean over warps ("mean"), each
    clip's most confident warp ("confident": highest top posterior), or each speaker's
    ("speaker": highest top posterior averaged over the speaker's clips, one warp for all)."""
    top = posteriors.max(axis=2)
    if combine == "mean":
        return posteriors.mean(axis=1)
    if combine == "confident":
        pick = top.argmax(axis=1)
    else:
        names = np.asarray(speakers)
        best = {s: top[names == s].mean(axis=0).argmax() for s in set(speakers)}
        pick = np.array([best[s] for s in speakers], dtype=int)
    return posteriors[np.arange(len(posteriors)), pick]


def _clip_audio(clip, change) -> np.ndarray:
    audio = load_audio(clip.path, RATE_HZ)[:RATE_HZ]
    audio = np.pad(audio, (0, RATE_HZ - len(audio))).astype(np.float32)
    return change(audio) if change else audio


def voice_table(backend, clips, voices: dict[str, str], change=None, warps=None,
                combine: str = "mean") -> dict:  # fmt: skip
    """{voice: {"commands": [correct, n], "unknown": [correct, n], "confusions": Counter}};
    `change` (audio -> audio) is applied to each clip first; with `warps` each clip is scored
    under every warp and the posteriors joined by `join_warps(..., combine)`."""
    table = collections.defaultdict(
        lambda: {"commands": [0, 0], "unknown": [0, 0], "confusions": collections.Counter()}
    )
    front_end = TorchFrontEnd(backend.feature_cfg)
    posteriors = np.stack([
        warped_posteriors(backend, front_end, _clip_audio(clip, change), warps)
        for clip in clips
    ])  # fmt: skip
    if warps:
        posteriors = join_warps(posteriors, [c.speaker for c in clips], combine)
    else:
        posteriors = posteriors[:, 0]
    for clip, posterior in zip(clips, posteriors, strict=True):
        said = backend.labels[int(np.argmax(posterior))]
        truth = clip.word if is_keyword(clip.word) and clip.word in backend.labels else UNKNOWN
        row = table[voices[clip.speaker]]
        tally = row["unknown" if truth == UNKNOWN else "commands"]
        tally[0] += said == truth
        tally[1] += 1
        if said != truth:
            row["confusions"][f"{truth} -> {said}"] += 1
    return dict(sorted(table.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run folder (its checkpoint, or the files `kws export` wrote)")
    parser.add_argument("--data", type=Path, required=True, help="a `kws data synth` set")
    parser.add_argument("--engine", required=True, help="the speaker-id prefix: flite, kokoro...")
    parser.add_argument(
        "--by",
        choices=("voice", "style"),
        default="voice",
        help="group by the engine voice, or by a Kokoro blend's main style",
    )
    parser.add_argument("--backend", choices=("torch", "onnx", "tflite"), help="default: fastest")
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--world", type=float, nargs=2, metavar=("F0", "FORMANTS"),
                        help="score WORLD-resynthesized clips: F0, formants x these")  # fmt: skip
    parser.add_argument(
        "--warps",
        type=float,
        nargs="+",
        metavar="W",
        help="score each clip under these spectrum warps (test-time VTLP)",
    )
    parser.add_argument(
        "--combine",
        choices=("mean", "confident", "speaker"),
        default="mean",
        help="join the warps' posteriors: mean, most confident per clip or per speaker",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    voices = _voices(args.data, args.engine, args.by)
    clips = [c for c in index_clips(args.data) if c.speaker in voices]
    if not clips:
        sys.exit(f"error: no clips of {args.engine} speakers under '{args.data}'")
    change = None
    if args.world:
        try:
            import pyworld  # noqa: F401
        except ImportError as error:
            sys.exit(f'error: {error}; --world needs `pip install pyworld "setuptools<80"`')
        change = _vocoder(*args.world)
    backend = load_backend(args.backend, args.run)
    features = backend.feature_cfg
    lowest = features.mel_high_hz / (features.sample_rate_hz / 2)
    if args.warps and min(args.warps) < lowest:  # warp_spectrum would empty the top mel bands
        sys.exit(f"error: --warps {args.warps}: with mel bands up to {features.mel_high_hz:g} Hz "
                 f"give factors of {lowest:.3g} or more (0.9, 1.1)")  # fmt: skip
    table = voice_table(backend, clips, voices, change, args.warps, args.combine)
    world = ", WORLD-resynthesized with F0 x{:g}, formants x{:g}".format(*args.world or (0, 0))
    warped = f", warped x{args.warps} ({args.combine})" if args.warps else ""
    print(f"{args.engine} clips of {args.data}, every split, by {args.by}"
          f"{world if args.world else ''}{warped}:")  # fmt: skip
    for voice, row in table.items():
        print(f"  {voice}: commands {format_accuracy(*row['commands'])}, "
              f"unknown words {format_accuracy(*row['unknown'])}")  # fmt: skip
        print("    " + ", ".join(f"{k} {v}" for k, v in row["confusions"].most_common(6)))
    if args.json:
        if args.world:  # the table says what it scored
            table["world"] = {"f0_scale": args.world[0], "formant_scale": args.world[1]}
        if args.warps:
            table["warps"] = {"warps": args.warps, "combine": args.combine}
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
