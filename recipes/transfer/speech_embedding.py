"""A teacher pretrained on real speech: Google's speech embedding with a small head, written as
soft targets for offline distillation (`kws train ... train.soft_targets=FILE`).

Lin, Kilgour, Roblek, Sharifi, "Training Keyword Spotters with Limited and Synthesized Speech
Data" (ICASSP 2020): a speech embedding pretrained on a large real-speech corpus, frozen, lets
a small head trained on synthesized clips recognise real speakers. The embedding model
(Google's `speech_embedding`, Apache-2.0; 32-bin log-mel frames every 10 ms in, one 96-d vector
per 775 ms window every 80 ms out: 3 for a one-second clip) ships as ONNX in the `openwakeword`
0.4.0 wheel (`pip install openwakeword==0.4.0`; later releases download it instead). Here:

1. Every training clip is embedded as heard (no augmentation) and in `--augmented-passes`
   augmented versions (the recipe's own augmentation); a head (LayerNorm, two 256-unit ReLU
   layers with dropout 0.3, AdamW, cosine schedule) learns the labels from `(3, 96)` inputs.
2. The teacher's log-posteriors of every clean training clip are the head's, or with `--fuse
   RUN...` the weighted mean `w * head + (1 - w) * mean(runs)` of log-posteriors
   (`--head-weight w`); each silence example is taught the mean over the silence examples.
   The file also holds each clean clip's embeddings, flattened to `(3 * 96,)`, for hints
   (`train.hint_weight`).
3. It scores the teacher (and with `--fuse` the head alone and the runs alone) on the
   validation and test splits and, with `--holdout-engine E --data DIR` (and
   `--validation-engine V --validation-data DIR`), on each engine's clips.

    python recipes/transfer/speech_embedding.py recipes/synth/medium_ds_cnn_s.yaml \
        data.root=D "data.exclude_speakers=[kokoro-]" --out T.npz [--fuse RUN...] \
        [--holdout-engine kokoro --data data/synth_medium] [--json OUT]

Every accuracy carries n and its 95% Wilson interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kws.config import load_recipe
from kws.data.dataset import build_data
from kws.data.synth.engines import canonical_engine
from kws.errors import UserError
from kws.io import atomic_write_text
from kws.stats import format_accuracy
from kws.train.distill import clip_key, load_teacher, save_soft_targets
from kws.train.evaluate import EVAL_SEED

SILENCE = "_silence_"
HIDDEN, DROPOUT, BATCH = 256, 0.3, 256


def embedder():
    """openwakeword's `AudioFeatures` (melspectrogram + embedding ONNX models, CPU).

    Raises:
        UserError: openwakeword 0.4.0 is not installed.
    """
    try:
        from openwakeword.utils import AudioFeatures
    except ImportError as exc:
        raise UserError(
            "the speech embedding ships in openwakeword 0.4.0: pip install openwakeword==0.4.0"
        ) from exc
    import warnings

    with warnings.catch_warnings():  # it asks for CUDA first and warns when there is none
        warnings.simplefilter("ignore", UserWarning)
        return AudioFeatures(ncpu=torch.get_num_threads())


def embed(features, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """`(embeddings (examples, 3, 96), labels (examples,))` of `(audio, labels)` batches of
    one-second float audio in [-1, 1]."""
    xs, ys = [], []
    for audio, labels in batches:
        pcm = (audio.clamp(-1, 1) * 32767).round().short().cpu().numpy()
        xs.append(torch.from_numpy(features.embed_clips(pcm, batch_size=BATCH).copy()))
        ys.append(labels.cpu())
    return torch.cat(xs).float(), torch.cat(ys)


def make_head(shape: tuple[int, ...], classes: int) -> torch.nn.Module:
    """The head over one clip's embeddings `(windows, 96)` -> logits `(classes,)`."""
    dim = int(np.prod(shape))
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.LayerNorm(dim),
        torch.nn.Linear(dim, HIDDEN), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
        torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
        torch.nn.Linear(HIDDEN, classes),
    )  # fmt: skip


def train_head(x: torch.Tensor, y: torch.Tensor, classes: int, epochs: int, seed: int):
    """A head trained on embeddings `x (examples, windows, 96)` and labels `y`; eval mode."""
    torch.manual_seed(seed)
    head = make_head(tuple(x.shape[1:]), classes)
    optimizer = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=order).split(BATCH):
            loss = F.cross_entropy(head(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return head.eval()


@torch.no_grad()
def teacher_log_probs(head, x, runs: list, data, split: str, weight: float) -> torch.Tensor:
    """`(examples, classes)` log-posteriors of one split (kws's evaluation draw): the head's,
    or fused with the runs' mean log-posteriors."""
    head_lp = F.log_softmax(head(x), dim=1)
    if not runs:
        return head_lp
    batches = list(data.batches(split, 500, seed=EVAL_SEED))
    runs_lp = torch.stack([
        torch.cat([F.log_softmax(model(f).float(), dim=1) for f, _ in batches]) for model in runs
    ]).mean(dim=0)  # fmt: skip
    return weight * head_lp + (1 - weight) * runs_lp


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); 0 on success, 2 on a `UserError` (its message on
    stderr)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotted overrides, as for `kws train`")
    p.add_argument("--out", required=True, help="the soft-target .npz to write")
    p.add_argument("--fuse", nargs="*", default=[], metavar="RUN")
    p.add_argument("--head-weight", type=float, default=0.5)
    p.add_argument("--augmented-passes", type=int, default=2)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--holdout-engine", default=None)
    p.add_argument("--data", default=None, help="the set holding the held-out engine")
    p.add_argument("--validation-engine", default=None)
    p.add_argument("--validation-data", default=None)
    p.add_argument("--json", default=None, help="also write the teacher's scores here")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Embed, train the head, write the soft targets and print the teachers' scores.

    Raises:
        UserError: `--out` exists without `--force`, a head weight outside [0, 1], openwakeword
            missing, data or runs kws refuses (no clips, other labels or front end).
    """
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite it or pick another --out")
    if not 0.0 <= args.head_weight <= 1.0:
        raise UserError(f"--head-weight {args.head_weight}: a weight in [0, 1]")
    cfg = load_recipe(args.recipe, args.overrides)
    torch.set_num_threads(cfg.train.num_threads or torch.get_num_threads())
    data = build_data(cfg, torch.device("cpu"), progress=False)
    labels, features = list(data.labels), embedder()
    clean = embed(features, data.audio_batches("training", 500, seed=EVAL_SEED))
    passes = [clean] + [
        embed(features, data.audio_batches("training", 500, augment=True, seed=100 + i))
        for i in range(args.augmented_passes)
    ]  # fmt: skip
    x, y = torch.cat([a for a, _ in passes]), torch.cat([b for _, b in passes])
    head = train_head(x, y, len(labels), args.epochs, cfg.train.seed)
    runs = [load_teacher(r, labels, cfg.features) for r in args.fuse]
    lp = teacher_log_probs(head, clean[0], runs, data, "training", args.head_weight)
    rows = data.examples["training"].bank_rows
    silence = rows < 0
    clips = [clip_key(data.clips[r]) for r in rows[~silence]]
    logits, silence_lp = by_clip(lp, silence)
    embeddings, silence_embedding = by_clip(clean[0].flatten(1), silence)
    save_soft_targets(out, labels, clips, logits, silence_lp, embeddings, silence_embedding)
    scores = score(args, cfg, data, head, runs, features)
    for teacher, sets in scores.items():
        for name, (correct, n) in sets.items():
            print(f"{teacher} on {name}: {format_accuracy(correct, n)}")
    print(f"wrote {out} ({len(clips)} clips)")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(scores, indent=1) + "\n")
    return 0


def by_clip(values: torch.Tensor, silence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(values of the spoken examples, the mean over the silence examples)` of `values
    (examples, width)`; zeros when there is no silence."""
    quiet = values[torch.from_numpy(silence)]
    mean = quiet.mean(0) if silence.any() else values.new_zeros(values.shape[1])
    return values[torch.from_numpy(~silence)].numpy(), mean.numpy()


def score(args, cfg, data, head, runs, features) -> dict:
    """`{teacher: {set: [correct, examples]}}` on validation, test and each engine: the head
    alone, and with `--fuse` the runs' ensemble alone and the fused teacher."""
    sets = [("validation", data, "validation"), ("testing", data, "testing")]
    for engine, root in ((args.holdout_engine, args.data),
                         (args.validation_engine, args.validation_data)):  # fmt: skip
        if engine and root:
            engine = canonical_engine(engine)  # espeak-ng's speakers are espeak-<hash>
            held = load_recipe(args.recipe, [*args.overrides, f"data.root={root}",
                                             f'data.exclude_speakers=["{engine}-"]'])  # fmt: skip
            sets.append((engine, build_data(held, torch.device("cpu"), False, False), "holdout"))
    teachers = {"head": 1.0, "runs": 0.0, "fused": args.head_weight} if runs else {"head": 1.0}
    scores: dict = {name: {} for name in teachers}
    for name, d, split in sets:
        x, y = embed(features, d.audio_batches(split, 500, seed=EVAL_SEED))
        for teacher, weight in teachers.items():
            lp = teacher_log_probs(head, x, runs, d, split, weight)
            scores[teacher][name] = [int((lp.argmax(1) == y).sum()), len(y)]
    return scores


if __name__ == "__main__":
    sys.exit(main())
