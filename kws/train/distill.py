"""Knowledge distillation: a small student trained on a larger teacher's soft posteriors.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network" (2015): the student's loss
is `(1 - w) * CE(student, labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))`,
`w = train.distill_weight`, `T = train.distill_temperature` (the T^2 keeps the soft term's
gradients on the hard term's scale as T changes). The teacher is any trained run with the same
labels and front end (`train.teacher=runs/<name>`); it sees exactly the student's augmented
batch, so the soft targets describe what the student is shown. Several runs
(`"train.teacher=[runs/a,runs/b,runs/c]"`) teach as one ensemble, the mean of their logits: the
normalised geometric mean of the members' posteriors, the geometric of the two ensemble means
Hinton et al. name.

Offline distillation (`train.soft_targets=FILE`): a teacher kws cannot run at every step (a
pretrained speech embedding and its head, `recipes/transfer/speech_embedding.py`) writes its
logits of every training clip once, as heard without augmentation; each augmented example is
then taught its clip's logits. The file is an `.npz` (`save_soft_targets`): `labels` (classes,),
`clips` (n,) `<word>/<file>.wav` names, `logits` (n, classes) and `silence_logits`
(classes,), the target of every silence example; optionally `embeddings` (n, dim) and
`silence_embedding` (dim,), the teacher's representation of each clip, for hints.

Hints (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015), `train.hint_weight=w`:
a linear map of the student's pooled embedding (the model's `embed`, `(batch, width)`) learns,
with the student, to regress the teacher's embedding of each example's clip, each dimension
standardized over the training clips; `w` times that mean squared error joins the loss. The
map trains with the student's optimizer and lives in the checkpoints' state (resume), never in
the model: export and inference do not see it.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kws import distributed
from kws.config import FeatureConfig, RecipeConfig, TrainConfig
from kws.errors import UserError
from kws.io import atomic_write_bytes, file_sha256, warn_once
from kws.run import resolve_run


class EnsembleTeacher(nn.Module):
    """Several trained models as one teacher: `forward` gives the mean of their logits,
    `(batch, classes)`, for features `(batch, frames, coeffs)`. A teacher never trains: it
    stays in eval mode whatever `train()` asks (BatchNorm on its running statistics).

    Raises:
        ValueError: no members.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        super().__init__()
        self.members = nn.ModuleList(members)
        self.eval()

    def train(self, mode: bool = True) -> EnsembleTeacher:
        return super().train(False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(features) for member in self.members]).mean(dim=0)


def load_teacher(path: str | list[str], labels: list[str], features: FeatureConfig) -> nn.Module:
    """The teacher run's best checkpoint as a frozen module in eval mode (on the CPU); a list
    of runs gives their `EnsembleTeacher`.

    Raises:
        UserError: the path is no run or checkpoint, or its labels or front end differ from
            the student's (soft targets must mean the same classes of the same input); an
            empty list.
    """
    if isinstance(path, list) and not path:
        raise UserError("train.teacher=[] names no run; give one or more runs, or train.teacher=''")
    if isinstance(path, list):
        members = [load_teacher(member, labels, features) for member in path]
        return members[0] if len(members) == 1 else EnsembleTeacher(members)
    checkpoint = resolve_run(path).checkpoint()
    if list(checkpoint.labels) != list(labels):
        raise UserError(
            f"train.teacher={path} predicts {checkpoint.labels}, the student's data has "
            f"{list(labels)}; distil from a run trained on the same task (data.task, data.words)"
        )
    if asdict(checkpoint.config.features) != asdict(features):
        theirs, ours = asdict(checkpoint.config.features), asdict(features)
        keys = [k for k in ours if theirs.get(k) != ours[k]]
        raise UserError(
            f"train.teacher={path} has another front end ("
            + ", ".join(f"features.{k}: {theirs.get(k)} there, {ours[k]} here" for k in keys)
            + "); give the student the teacher's features section or pick another teacher"
        )
    teacher = checkpoint.build_model()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def refuse_self_teacher(cfg: RecipeConfig, run) -> None:
    """Refuse a teacher that is the run being trained (`train.teacher` naming the run's folder
    or a file in it): `--force` would delete the teacher before it taught, a resume would be
    taught by its own later epochs.

    Raises:
        UserError: naming the run and the ways on.
    """
    teachers = cfg.train.teacher if isinstance(cfg.train.teacher, list) else [cfg.train.teacher]
    root = Path(run.root).resolve()
    for teacher in filter(None, teachers):
        path = Path(teacher).resolve()
        if path == root or root in path.parents:
            raise UserError(
                f"train.teacher={teacher} is the run being trained ('{run.root}'); to distil a "
                "run from its own model, copy the run first (cp -r) and name the copy as the "
                "teacher, or train the student under a new name (name=NEW)"
            )


def warn_unused_distillation(cfg: RecipeConfig) -> None:
    """Say so when distillation settings differ from their defaults but nothing teaches: they
    would change nothing (`train.distill_weight` without `train.teacher` or `soft_targets`)."""
    if cfg.train.teacher or cfg.train.soft_targets:
        return
    defaults = TrainConfig()
    changed = [f"train.{key}={getattr(cfg.train, key)}"
               for key in ("distill_weight", "distill_temperature")
               if getattr(cfg.train, key) != getattr(defaults, key)]  # fmt: skip
    they = "it changes" if len(changed) == 1 else "they change"
    message = (
        f"warning: {' '.join(changed)}: for a teacher's soft targets, but no teacher is given "
        f"(train.teacher or train.soft_targets), so {they} nothing"
    )
    if changed:
        warn_once(message)  # growth trains many rounds


def check_teacher_inputs(cfg: RecipeConfig, run) -> None:
    """Before a verb deletes anything (`--force`): the teacher is not the run itself and its
    files are there (`refuse_self_teacher`, `teacher_digests`).

    Raises:
        UserError: what those raise.
    """
    refuse_self_teacher(cfg, run)
    teacher_digests(cfg)


def teacher_digests(cfg: RecipeConfig) -> list[list[str]]:
    """`[path, sha256]` of each file that teaches the run `cfg` trains: the soft-target file, or
    each teacher run's checkpoint (the one `load_teacher` reads), in order; `[]` without a
    teacher. A resume compares them (`kws.train.resume.check_teacher_unchanged`).

    Raises:
        UserError: a soft-target file or teacher path that does not exist, a teacher run
            without a checkpoint.
    """
    if cfg.train.soft_targets:
        if not Path(cfg.train.soft_targets).is_file():
            raise UserError(f"train.soft_targets={cfg.train.soft_targets} is no file; write it "
                            "with recipes/transfer/speech_embedding.py")  # fmt: skip
        files = [Path(cfg.train.soft_targets)]
    else:
        teachers = cfg.train.teacher if isinstance(cfg.train.teacher, list) else [cfg.train.teacher]
        files = [resolve_run(t).checkpoint_path() for t in teachers if t]
    return [[str(path), file_sha256(path)] for path in files]


def make_hint(
    model: nn.Module, targets: SoftTargets, optimizer: torch.optim.Optimizer, cfg: RecipeConfig
) -> Hint:
    """The hint term for `model` (a `RecipeConfig` `cfg` with `train.hint_weight`); its projector
    trains in `optimizer`, added as a second parameter group.

    Raises:
        UserError: the soft targets hold no embeddings, or training runs on several processes.
    """
    if targets.embeddings is None or distributed.is_distributed():
        check_hint_file(cfg)  # raises, naming the fix
    shape = (1, *model.spec.input_shape)
    device = next(model.parameters()).device
    was_training = model.training
    with torch.no_grad():
        width = model.eval().embed(torch.zeros(shape, device=device)).shape[1]
    model.train(was_training)
    hint = Hint(targets.embeddings, width).to(device)
    optimizer.add_param_group({"params": list(hint.parameters())})
    return hint


def check_hint_file(cfg: RecipeConfig) -> None:
    """Refuse, before any work, hints that cannot run: soft targets without embeddings, or
    several processes (the projector is one process's). No-op without `train.hint_weight`.

    Raises:
        UserError: as said, each naming the fix.
    """
    if not cfg.train.hint_weight:
        return
    try:
        with np.load(cfg.train.soft_targets, allow_pickle=False) as f:
            has_embeddings = "embeddings" in f.files
    except (OSError, ValueError) as exc:
        raise UserError(
            f"train.soft_targets={cfg.train.soft_targets} is no soft-target file ({_why(exc)}); "
            "write one with recipes/transfer/speech_embedding.py"
        ) from exc
    if not has_embeddings:
        raise UserError(
            f"train.hint_weight={cfg.train.hint_weight} regresses the teacher's embeddings, but "
            f"train.soft_targets={cfg.train.soft_targets} holds none; write the file again with "
            "recipes/transfer/speech_embedding.py or set train.hint_weight=0"
        )
    if distributed.is_distributed():
        raise UserError("train.hint_weight trains on one process; run kws train without torchrun")


def clip_key(clip) -> str:
    """A clip's name in a soft-target file: `<word>/<file>.wav`, as GSC's split lists name it."""
    return f"{clip.word}/{clip.path.name}"


class SoftTargets:
    """Precomputed teacher logits by bank row: `self(rows (batch,))` gives `(batch, classes)`;
    row -1 (silence) gives the silence target. `embeddings` likewise `(bank rows + 1, dim)`,
    standardized, or None. Built by `load_soft_targets`."""

    def __init__(self, table: torch.Tensor, embeddings: torch.Tensor | None = None) -> None:
        self.table = table  # (bank rows + 1, classes); the last row is silence's
        self.embeddings = embeddings

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        return self.table[rows]  # -1 indexes the last row: silence


class Hint(nn.Module):
    """The hint term (module docstring): `self(embedding (batch, width), rows (batch,))` is the
    mean squared error of `projector(embedding)` against the teacher embeddings of `rows`."""

    def __init__(self, targets: torch.Tensor, width: int) -> None:
        super().__init__()
        # (bank rows + 1, dim), standardized: moves with the module, never saved (the file is)
        self.register_buffer("targets", targets, persistent=False)
        self.projector = nn.Linear(width, targets.shape[1])

    def forward(self, embedding: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The mean over batch and dimensions (a scalar) for the student's pooled embedding
        `(batch, width)` of the examples of bank `rows` `(batch,)` (-1: silence)."""
        return F.mse_loss(self.projector(embedding.float()), self.targets[rows])


def save_soft_targets(
    path: Path, labels: list[str], clips: list[str], logits: np.ndarray, silence: np.ndarray,
    embeddings: np.ndarray | None = None, silence_embedding: np.ndarray | None = None,
) -> None:  # fmt: skip
    """Write soft targets (module docstring) atomically; `clips` as `clip_key` names them."""
    buffer = io.BytesIO()
    arrays = {"labels": np.array(labels), "clips": np.array(clips),
              "logits": np.asarray(logits, np.float32),
              "silence_logits": np.asarray(silence, np.float32)}  # fmt: skip
    if embeddings is not None:
        arrays["embeddings"] = np.asarray(embeddings, np.float32)
        arrays["silence_embedding"] = np.asarray(silence_embedding, np.float32)
    np.savez(buffer, **arrays)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_soft_targets(path: str, data) -> SoftTargets:
    """The soft targets of `path` for every training example of `data` (a `KwsData`), with
    the teacher's embeddings when the file holds them.

    Raises:
        UserError: no such file or not a soft-target file (wrong shapes, a clip named twice,
            a value that is not finite), other labels, a training clip
            without a target (targets computed for other data), or training examples that are
            not clips as stored (stream windows, hard negatives).
    """
    d = data.cfg.data
    if d.stream_fraction > 0 or d.hard_negatives:
        raise UserError(
            "train.soft_targets teaches each clip its teacher's logits, but data.stream_fraction "
            "or data.hard_negatives make training examples that are no stored clip; set them to "
            "0 / false, or distil from a run (train.teacher)"
        )
    labels, clips, arrays = _read_targets(path)
    if labels != list(data.labels):
        raise UserError(f"train.soft_targets={path} holds logits of {labels}, the data has "
                        f"{list(data.labels)}; compute them for this task")  # fmt: skip
    where = {name: i for i, name in enumerate(clips)}
    logits, *embedded = [_by_row(values, quiet, where, data) for values, quiet in arrays]
    rows = data.examples["training"].bank_rows
    missing = [int(r) for r in rows if np.isnan(logits[r]).any()]
    if missing:
        first = data.clips[missing[0]].path if missing[0] < len(data.clips) else missing[0]
        raise UserError(
            f"train.soft_targets={path} has no target for {len(missing)} training examples "
            f"(e.g. {first}); compute them for this data.root, data.exclude_speakers and "
            "data.seed"
        )
    embeddings = None
    if embedded:  # standardized over the training examples (silence's once per example)
        seen = embedded[0][rows]
        embeddings = (embedded[0] - seen.mean(0)) / (seen.std(0) + 1e-6)
        embeddings = torch.from_numpy(embeddings.astype(np.float32)).to(data.device)
    return SoftTargets(torch.from_numpy(logits).to(data.device), embeddings)


def _read_targets(path: str) -> tuple[list[str], list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """(labels, clip names, [(logits, silence logits), optionally (embeddings, silence's)])
    of a soft-target file, checked (`load_soft_targets`)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            labels, clips = [str(x) for x in f["labels"]], [str(x) for x in f["clips"]]
            arrays = [(f["logits"], f["silence_logits"])]
            if "embeddings" in f:
                arrays.append((f["embeddings"], f["silence_embedding"]))
        widths = [len(labels)] + [values.shape[-1] for values, _ in arrays[1:]]
        for (values, silence), width in zip(arrays, widths):
            if values.shape != (len(clips), width) or silence.shape != (width,):
                raise ValueError(f"{values.shape} and silence {silence.shape} for {len(clips)} "
                                 f"clips of {width} values")  # fmt: skip
            if not (np.isfinite(values).all() and np.isfinite(silence).all()):
                raise ValueError("a value that is not finite")
        if len(set(clips)) != len(clips):
            raise ValueError("a clip named twice")
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"train.soft_targets={path} is no soft-target file ({_why(exc)}); "
                        "write one with recipes/transfer/speech_embedding.py") from exc  # fmt: skip
    return labels, clips, arrays


def _by_row(values: np.ndarray, silence: np.ndarray, where: dict, data) -> np.ndarray:
    """`(bank rows + 1, width)`: each stored clip's values (NaN where the file has none), the
    last row silence's."""
    table = np.full((len(data.bank) + 1, values.shape[1]), np.nan, np.float32)
    for row, clip in enumerate(data.clips):
        i = where.get(clip_key(clip))
        if i is not None:
            table[row] = values[i]
    table[-1] = silence
    return table


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    hard_loss: nn.Module,
    weight: float,
    temperature: float,
) -> torch.Tensor:
    """The mean distillation loss of one batch (module docstring).

    Args:
        student_logits / teacher_logits: `(batch, classes)`; no teacher logits (None) or
            `weight` 0 give the hard loss alone.
        labels: `(batch,)` class indices.
        hard_loss: the loss on the labels (cross-entropy, label smoothing as configured).
        weight: share of the soft term, 0..1 (0 = plain training).
        temperature: softmax temperature of both models' posteriors, > 0.
    """
    hard = hard_loss(student_logits, labels)
    if teacher_logits is None or weight == 0:
        return hard
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits.float() / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * hard + weight * temperature**2 * soft


def _why(exc: Exception) -> str:
    """What is wrong with a file `np.load` refused: numpy reads any file that is neither .npy
    nor .npz as a pickle, and refusing it says only "pickled data"."""
    if "pickled" in str(exc):
        return "not an .npz archive of arrays"
    return str(exc)
