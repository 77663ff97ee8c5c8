"""How much of a pretrained speech embedding a trained student's embedding carries, per set.

For hints (`train.hint_weight`, kws.train.distill): the student's pooled embedding, mapped
linearly, regresses Google's speech embedding (recipes/transfer/speech_embedding.py) of each
training clip. This asks each run how much of that embedding its own embedding predicts, as
R^2 over the 3 x 96 standardized dimensions (1 - mean squared error / the set's variance), on
the training examples as heard, the in-domain test clips and a held-out engine's clips, through
the least-squares map (with a bias) fitted on the training examples, the best any linear map
does there, for every run, and for a run trained with hints also through its own projector (the
checkpoint's training state). The targets are the hint's: standardized over the training
examples, each silence example given the silence examples' mean.

    python recipes/diagnostics/embedding_fit.py RUN... --holdout-engine kokoro \
        --data data/synth_medium [--json OUT]

The runs must share one data section (the first run's gives the training and test clips).
Needs openwakeword 0.4.0 (`kws[teacher]`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from kws.data.synth.engines import canonical_engine
from kws.errors import UserError
from kws.io import atomic_write_text
from kws.run import resolve_run
from kws.train.evaluate import EVAL_SEED

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "transfer")]
from shift_checks import _data  # noqa: E402 (sibling script)
from speech_embedding import embed, embedder  # noqa: E402 (sibling script)

SETS = ("training", "testing", "held_out")


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


def r_squared(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - mean squared error / the target's variance around its own mean, `(examples, dim)`."""
    error = ((predicted - target) ** 2).mean()
    return float(1 - error / ((target - target.mean(0)) ** 2).mean())


@torch.no_grad()
def fit(runs: list[str], engine: str, root: str) -> dict:
    """`{run: {map: {set: R^2}}}` (module docstring): map `least_squares` for every run,
    `hint_projector` too for a run trained with hints.

    Raises:
        UserError: runs of different data sections, openwakeword missing, data kws refuses.
    """
    first = resolve_run(runs[0]).run.config([])
    for run in runs[1:]:
        if resolve_run(run).run.config([]).data != first.data:
            raise UserError(f"{run} was trained on other data than {runs[0]}; fit them apart")
    _, own = _data(runs[0], [])
    _, held = _data(runs[0], [f"data.root={root}", f'data.exclude_speakers=["{engine}-"]'])
    sources = {"training": (own, "training"), "testing": (own, "testing"),
               "held_out": (held, "holdout")}  # fmt: skip
    features = embedder()
    target = {name: embed(features, d.audio_batches(split, 500, seed=EVAL_SEED))[0]
              .flatten(1).double() for name, (d, split) in sources.items()}  # fmt: skip
    silence = torch.from_numpy(own.examples["training"].bank_rows < 0)
    if silence.any():  # every silence example is taught the silence examples' mean, as in hints
        target["training"][silence] = target["training"][silence].mean(0)
    mean, std = target["training"].mean(0), target["training"].std(0, unbiased=False) + 1e-6
    target = {name: (t - mean) / std for name, t in target.items()}
    rows = {}
    for run in runs:
        ref = resolve_run(run)
        checkpoint = ref.checkpoint()
        model = checkpoint.build_model().eval()
        student = {
            name: torch.cat([model.embed(f) for f, _ in d.batches(split, 500, seed=EVAL_SEED)])
            for name, (d, split) in sources.items()
        }
        student = {name: x.double() for name, x in student.items()}
        solution = torch.linalg.lstsq(_with_bias(student["training"]),
                                      target["training"]).solution  # fmt: skip
        maps = {"least_squares": {name: _with_bias(x) @ solution for name, x in student.items()}}
        hint = (checkpoint.state or {}).get("hint")
        if hint is not None:
            weight, bias = hint["projector.weight"].double(), hint["projector.bias"].double()
            maps["hint_projector"] = {name: x @ weight.T + bias for name, x in student.items()}
        rows[str(run)] = {how: {name: r_squared(predicted[name], target[name]) for name in SETS}
                          for how, predicted in maps.items()}  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); 0 on success, 2 on a `UserError`."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--holdout-engine", required=True, metavar="ENGINE")
    p.add_argument("--data", required=True, help="the set holding the held-out engine's clips")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    try:
        rows = fit(args.runs, canonical_engine(args.holdout_engine), args.data)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for run, row in rows.items():
        for how, r2 in row.items():
            print(f"{run} ({how}): R^2 " + ", ".join(f"{name} {r2[name]:.3f}" for name in SETS))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
