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
`--tempo RATE` scores every clip played RATE times as fast through WORLD (every frame held 1/RATE
as long, pitch and envelope kept; `recipes/transfer/engine_factors.py`'s stretch), centred in one
second: `--tempo 1` is the round trip alone, the control. Each voice's line also gives the median
length of its command clips' speech (`active_ms`), as scored.
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
    vocode_set = _load("vocode_set")
    settings = {"cepstra": 0, "aperiodicity": 1.0, "f0_scale": f0_scale,
                "formant_scale": formant_scale}  # fmt: skip
    return lambda audio: vocode_set.vocode(audio, settings)


def _load(script: str):
    """A sibling experiment script (recipes/transfer/NAME.py) as a module."""
    folder = Path(__file__).resolve().parents[1] / "transfer"
    if str(folder) not in sys.path:  # engine_factors.py imports vocode_set.py by name
        sys.path.insert(0, str(folder))
    path = folder / f"{script}.py"
    spec = importlib.util.spec_from_file_location(script, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stretcher(rate: float):
    """audio -> audio: a 1 s clip played `rate` times as fast through a WORLD analysis and
    resynthesis (every frame held 1/rate as long, F0 and envelope kept; engine_factors.py's),
    centred in 1 s at the clip's peak level; `rate` 1 is the round trip alone."""
    factors = _load("engine_factors")

    def stretch(audio: np.ndarray) -> np.ndarray:
        analysis = factors.stretch_frames(factors._analyse(audio), 1.0 / rate)
        played = factors._synthesize(analysis)
        start = max(0, (len(played) - RATE_HZ) // 2)
        played = played[start : start + RATE_HZ]
        pad = RATE_HZ - len(played)
        out = np.pad(played, (pad // 2, pad - pad // 2))
        peak_in, peak_out = np.abs(audio).max(), np.abs(out).max()
        return (out * (peak_in / peak_out if peak_out > 0 else 0.0)).astype(np.float32)

    return stretch


def active_ms(audio: np.ndarray, floor_db: float = 25.0) -> float:
    """Length of a clip's speech, ms: its 10 ms frames within `floor_db` of the loudest frame
    (reverberation tails above that floor count, so compare voices, not absolute lengths)."""
    frame = RATE_HZ // 100
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame).astype(np.float64)
    level_db = 10 * np.log10((frames**2).mean(axis=1) + 1e-10)
    return 10.0 * int((level_db > level_db.max() - floor_db).sum())


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
    """{voice: {"commands": [correct, n], "unknown": [correct, n], "confusions": Counter,
    "command_ms": median `active_ms` of its command clips}}; `change` (audio -> audio) is
    applied to each clip first; with `warps` each clip is scored under every warp and the
    posteriors joined by `join_warps(..., combine)`."""
    table = collections.defaultdict(
        lambda: {"commands": [0, 0], "unknown": [0, 0], "confusions": collections.Counter()}
    )
    front_end = TorchFrontEnd(backend.feature_cfg)
    audios = [_clip_audio(clip, change) for clip in clips]
    posteriors = np.stack([warped_posteriors(backend, front_end, a, warps) for a in audios])
    lengths = collections.defaultdict(list)
    if warps:
        posteriors = join_warps(posteriors, [c.speaker for c in clips], combine)
    else:
        posteriors = posteriors[:, 0]
    for clip, audio, posterior in zip(clips, audios, posteriors, strict=True):
        said = backend.labels[int(np.argmax(posterior))]
        truth = clip.word if is_keyword(clip.word) and clip.word in backend.labels else UNKNOWN
        row = table[voices[clip.speaker]]
        if truth != UNKNOWN:
            lengths[voices[clip.speaker]].append(active_ms(audio))
        tally = row["unknown" if truth == UNKNOWN else "commands"]
        tally[0] += said == truth
        tally[1] += 1
        if said != truth:
            row["confusions"][f"{truth} -> {said}"] += 1
    for voice, row in table.items():
        row["command_ms"] = float(np.median(lengths[voice])) if lengths[voice] else None
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
    parser.add_argument(
        "--tempo",
        type=float,
        metavar="RATE",
        help="score clips played RATE times as fast (WORLD; 1: the round trip alone)",
    )
    args = parser.parse_args(argv)
    if args.tempo is not None and args.tempo <= 0:
        sys.exit(f"error: --tempo {args.tempo:g}: give a positive rate (1.2 plays 1.2x as fast)")
    if args.tempo is not None and (args.world or args.warps):
        sys.exit("error: --tempo changes the clips on its own; leave out --world and --warps")
    torch.set_num_threads(1)
    voices = _voices(args.data, args.engine, args.by)
    clips = [c for c in index_clips(args.data) if c.speaker in voices]
    if not clips:
        sys.exit(f"error: no clips of {args.engine} speakers under '{args.data}'")
    change = None
    if args.world or args.tempo is not None:
        try:
            import pyworld  # noqa: F401
        except ImportError as error:
            sys.exit(
                f'error: {error}; --world and --tempo need `pip install pyworld "setuptools<80"`'
            )
        change = _stretcher(args.tempo) if args.tempo is not None else _vocoder(*args.world)
    backend = load_backend(args.backend, args.run)
    features = backend.feature_cfg
    lowest = features.mel_high_hz / (features.sample_rate_hz / 2)
    if args.warps and min(args.warps) < lowest:  # warp_spectrum would empty the top mel bands
        sys.exit(f"error: --warps {args.warps}: with mel bands up to {features.mel_high_hz:g} Hz "
                 f"give factors of {lowest:.3g} or more (0.9, 1.1)")  # fmt: skip
    table = voice_table(backend, clips, voices, change, args.warps, args.combine)
    world = ", WORLD-resynthesized with F0 x{:g}, formants x{:g}".format(*args.world or (0, 0))
    warped = f", warped x{args.warps} ({args.combine})" if args.warps else ""
    tempo = f", played x{args.tempo:g} as fast" if args.tempo is not None else ""
    print(f"{args.engine} clips of {args.data}, every split, by {args.by}"
          f"{world if args.world else ''}{warped}{tempo}:")  # fmt: skip
    for voice, row in table.items():
        print(f"  {voice}: commands {format_accuracy(*row['commands'])}, "
              f"unknown words {format_accuracy(*row['unknown'])}, command speech "
              f"{row['command_ms'] or 0:.0f} ms (median)")  # fmt: skip
        print("    " + ", ".join(f"{k} {v}" for k, v in row["confusions"].most_common(6)))
    if args.json:
        if args.world:  # the table says what it scored
            table["world"] = {"f0_scale": args.world[0], "formant_scale": args.world[1]}
        if args.warps:
            table["warps"] = {"warps": args.warps, "combine": args.combine}
        if args.tempo is not None:
            table["tempo"] = {"rate": args.tempo}
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
