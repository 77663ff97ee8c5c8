"""Runs: the folder that owns everything one training or growth run produced.

A run folder (`runs/<name>/`) holds `config.yaml` (the resolved recipe), `checkpoints/`
(`best.pt`, `last.pt`), `metrics.jsonl`, `plots/`, `export/`, `report.md`; a growth run adds
`growth.json` and `rounds/round_<k>/` (each a run folder itself). `resolve_run` turns whatever
path a user gives (run folder, checkpoint, export folder or file, round folder, `grown.pt`) into
a `Run` and the checkpoint meant; `Checkpoint` is the one checkpoint format (plain data, loaded
with `torch.load(weights_only=True)`; ARCHITECTURE.md "Runs, checkpoints, artifacts").
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kws.config import RecipeConfig, apply_overrides, from_dict, read_recipe_file, save_yaml
from kws.config import to_dict as config_to_dict
from kws.errors import UserError
from kws.io import atomic_write, atomic_write_text, check_writable, read_jsonl
from kws.models import ModelSpec, build_model

FORMAT = "kws-checkpoint-2"
# Model keys that older checkpoints stored although other stages own them (front end, data).
# Keys older kws versions wrote and this one no longer has (growth.baselines never did anything:
# the rivals are `kws grow --compare`'s growth.compare_methods); dropped when a run is read.
_RETIRED_KEYS = {"model": ("num_classes", "input_frames", "input_coeffs"), "growth": ("baselines",)}


def _drop_retired(values: dict) -> dict:
    values = dict(values)
    for section, keys in _RETIRED_KEYS.items():
        if isinstance(values.get(section), dict):
            values[section] = {k: v for k, v in values[section].items() if k not in keys}
    return values


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, empty or not a kws checkpoint."""


def _plain(obj: Any) -> Any:
    """Plain Python data (tensors kept, on CPU) that `weights_only=True` loads back."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k if isinstance(k, int) else str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array: unsafe globals under weights_only
        return obj.tolist()
    return obj


@dataclass
class Checkpoint:
    """The one checkpoint format: plain data only, never pickled modules.

    Attributes:
        config: the resolved recipe, its model section being the model's current architecture.
        state_dict: parameter and buffer tensors.
        labels: class names in output order.
        epoch: epochs completed in the phase that wrote it.
        metrics: the epoch's metrics record.
        best_val_accuracy: best validation accuracy of the phase so far (fraction).
        optimizer: optimizer state (last.pt only; resuming needs it).
        growth: growth facts (plan, spectrum, round) for a model right after surgery.
        state: anything else a resume needs (global epoch counter, plateau tracker, ...).
    """

    config: RecipeConfig
    state_dict: dict[str, torch.Tensor]
    labels: list[str]
    epoch: int = 0
    metrics: dict = field(default_factory=dict)
    best_val_accuracy: float = 0.0
    optimizer: dict | None = None
    growth: dict | None = None
    state: dict = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        """The model's spec: its config, the front end's input shape, the labels' count."""
        return ModelSpec.of(self.config.model, self.config.features, len(self.labels))

    def build_model(self) -> nn.Module:
        """The model with these weights, in eval mode on CPU."""
        model = build_model(self.spec)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self) -> dict:
        """Plain data for `torch.save` (the optimizer state is kept exactly as torch gives it)."""
        data = {
            "format": FORMAT,
            "config": config_to_dict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "labels": list(self.labels),
            "epoch": int(self.epoch),
            "metrics": _plain(self.metrics),
            "best_val_accuracy": float(self.best_val_accuracy),
            "growth": _plain(self.growth),
            "state": _plain(self.state),
        }
        if self.optimizer is not None:
            data["optimizer"] = self.optimizer
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "checkpoint") -> Checkpoint:
        """Rebuild from `to_dict` output (format 1 checkpoints are migrated).

        Raises:
            CheckpointError: when keys are missing or the config does not validate.
        """
        if not isinstance(data, dict) or "state_dict" not in data or "config" not in data:
            raise CheckpointError(f"'{source}' is not a kws checkpoint (no state_dict/config)")
        values = _drop_retired(data["config"])
        try:
            config = from_dict(values)
        except UserError as exc:
            raise CheckpointError(f"'{source}' holds an invalid config: {exc}") from None
        return cls(
            config=config,
            state_dict=data["state_dict"],
            labels=list(data.get("labels", [])),
            epoch=int(data.get("epoch", 0)),
            metrics=data.get("metrics") or {},
            best_val_accuracy=float(data.get("best_val_accuracy", 0.0)),
            optimizer=data.get("optimizer"),
            growth=data.get("growth"),
            state=data.get("state") or {},
        )

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file, fsync, rename)."""
        payload = self.to_dict()
        return atomic_write(path, lambda handle: torch.save(payload, handle))

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Load safely (`weights_only=True`).

        Raises:
            CheckpointError: naming the file, for a missing, empty, truncated or foreign file.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint '{path}' does not exist")
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); {_fallback(path)}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, random bytes, pickled objects ...
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(
                f"checkpoint '{path}' is corrupt or not a kws checkpoint "
                f"({type(exc).__name__}{': ' + first if first else ''}); {_fallback(path)}"
            ) from None
        return cls.from_dict(data, str(path))


def _fallback(path: Path) -> str:
    """What to do instead of a broken checkpoint file."""
    sibling = path.with_name("best.pt" if path.name == "last.pt" else "last.pt")
    if path.name in ("last.pt", "best.pt") and sibling.is_file():
        return f"use '{sibling}' instead (e.g. pass it as the model path)"
    return "retrain, or pass another checkpoint"


class Run:
    """A run folder and the files in it (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Run('{self.root}')"

    config_path = property(lambda self: self.root / "config.yaml")
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    best_path = property(lambda self: self.root / "checkpoints" / "best.pt")
    last_path = property(lambda self: self.root / "checkpoints" / "last.pt")
    metrics_path = property(lambda self: self.root / "metrics.jsonl")
    plots_dir = property(lambda self: self.root / "plots")
    export_dir = property(lambda self: self.root / "export")
    report_path = property(lambda self: self.root / "report.md")
    growth_path = property(lambda self: self.root / "growth.json")
    logit_adjust_path = property(lambda self: self.root / "logit_adjust.json")  # kws logit-adjust

    def round(self, k: int) -> Run:
        """Round k of a growth run (a run folder of its own)."""
        return Run(self.root / "rounds" / f"round_{k}")

    def has_results(self) -> bool:
        """Whether anything a rerun would destroy is here (checkpoints, metrics, growth)."""
        kept = (self.checkpoints_dir, self.metrics_path, self.growth_path, self.root / "rounds")
        return any(p.exists() and (p.is_file() or any(p.iterdir())) for p in kept)

    def results(self) -> list[Path]:
        """What `--force` deletes: the run's model and everything made from it (checkpoints,
        metrics, growth rounds, plots, the export, evaluation reports, stream evaluations,
        report.md, a logit adjustment's record), so nothing left behind describes the old model.
        Mined hard negatives stay: they are training data a recipe may point at."""
        derived = [*self.root.glob("evaluation_*.json"), *self.root.glob("evaluation_*.txt")]
        fixed = [self.checkpoints_dir, self.metrics_path, self.growth_path, self.root / "rounds",
                 self.plots_dir, self.export_dir, self.report_path, self.logit_adjust_path,
                 self.root / "stream_eval.json", self.root / "stream_benchmark.json"]  # fmt: skip
        return [p for p in fixed + sorted(derived) if p.exists() or p.is_symlink()]

    def prepare(self, *, resume: bool = False, force: bool = False, what: str = "training") -> None:
        """Before a verb writes this run: refuse to overwrite results unless `resume` (continue
        in place) or `force` (start over: the verb calls `clear_results` once its inputs are
        checked, so a typo'd data folder or teacher does not cost the old run); check that the
        folder can be written.

        Raises:
            UserError: results exist and neither `resume` nor `force` was asked; or the folder
                cannot be written.
        """
        if not resume and not force and self.has_results():
            raise UserError(
                f"'{self.root}' already holds a run (checkpoints/metrics); {what} would overwrite "
                "it. Continue it with --resume, pick a new name (name=NEW), or pass --force to "
                "start over"
            )
        check_writable(self.root, what)

    def clear_results(self) -> list[Path]:
        """`--force`: delete `results()`, saying on stderr what went; returns what was deleted."""
        gone = self.results()
        for target in gone:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        if gone:
            names = ", ".join(str(t.relative_to(self.root)) for t in gone)
            print(f"--force: removed {names} from '{self.root}'", file=sys.stderr)
        return gone

    def checkpoint_path(self, which: str = "best") -> Path:
        """`checkpoints/<which>.pt`, falling back to the other one when it is missing.

        Raises:
            CheckpointError: when the run has no checkpoint at all.
        """
        first = self.best_path if which == "best" else self.last_path
        second = self.last_path if which == "best" else self.best_path
        for path in (first, second):
            if path.is_file():
                return path
        raise CheckpointError(
            f"no checkpoint in '{self.root}' (expected {first.relative_to(self.root)}); train it "
            "first (kws train ...) or pass a checkpoint file"
        )

    def checkpoint(self, which: str = "best") -> Checkpoint:
        """Load `checkpoint_path(which)` (see `Checkpoint.load`)."""
        return Checkpoint.load(self.checkpoint_path(which))

    def config(
        self, overrides: list[str] | None = None, checkpoint: Checkpoint | None = None
    ) -> RecipeConfig:
        """The run's resolved config (config.yaml, else `checkpoint`'s, by default the run's
        best's) with overrides. Pass the checkpoint a user named: a lone `.pt` has no run
        around it, only its own config.

        Raises:
            UserError: no config in the run, an empty config.yaml, or an override/value that
                does not validate.
        """
        if self.config_path.is_file():
            # kws writes it whole (atomically): empty is damage, not defaults
            if not self.config_path.read_text(errors="replace").strip():
                raise UserError(
                    f"'{self.config_path}' is empty, so this run's settings are unknown; restore "
                    "it, or delete it to use the settings saved in the run's checkpoint"
                )
            values = read_recipe_file(self.config_path)
        else:
            values = config_to_dict(
                (checkpoint if checkpoint is not None else self.checkpoint()).config
            )
        values = apply_overrides(_drop_retired(values), list(overrides or []))
        return from_dict(values)

    def save_config(self, cfg: RecipeConfig) -> Path:
        """Write the resolved recipe as `config.yaml` (atomically)."""
        return save_yaml(cfg, self.config_path)

    def metrics(self, upto_epoch: int | None = None) -> list[dict]:
        """The metrics lines, optionally only those of epochs <= `upto_epoch`."""
        rows = read_jsonl(self.metrics_path)
        return rows if upto_epoch is None else [r for r in rows if r.get("epoch", 0) <= upto_epoch]

    def trim_metrics(self, upto_epoch: int) -> list[dict]:
        """Rewrite `metrics.jsonl` without lines past the checkpoint a resume starts from.

        A crash between appending an epoch's line and writing its checkpoint leaves a line the
        resumed run would write again; this drops it (and a torn last line).
        """
        rows = self.metrics(upto_epoch)
        if self.metrics_path.is_file():
            text = "".join(json.dumps(r) + "\n" for r in rows)
            atomic_write_text(self.metrics_path, text)
        return rows


@dataclass
class RunRef:
    """What a user's path means: the run, and the model file meant (None = the run's best)."""

    run: Run
    model_path: Path | None = None

    @property
    def kind(self) -> str:
        """checkpoint | onnx | tflite | run, from the model file's suffix."""
        suffix = self.model_path.suffix.lower() if self.model_path else ""
        return {".pt": "checkpoint", ".pth": "checkpoint", ".onnx": "onnx",
                ".tflite": "tflite"}.get(suffix, "run")  # fmt: skip

    def checkpoint_path(self) -> Path:
        """The checkpoint file meant: the given .pt, else the run's best (then last).

        Raises:
            CheckpointError: the run has no checkpoint.
        """
        if self.model_path is not None and self.kind == "checkpoint":
            return self.model_path
        return self.run.checkpoint_path("best")

    def checkpoint(self) -> Checkpoint:
        """Load `checkpoint_path()` (see `Checkpoint.load`)."""
        return Checkpoint.load(self.checkpoint_path())


def pin_to_checkpoint(cfg: RecipeConfig, ckpt: Checkpoint, source: str | Path) -> RecipeConfig:
    """`cfg` with the checkpoint's architecture and front end: weights mean something only on
    the features they were trained on (`kws evaluate`, `kws export`). `source`: the checkpoint's
    path, for the message.

    Raises:
        UserError: `cfg`'s front end differs from the checkpoint's (a `features.*` override, an
            edited config.yaml), naming each difference.
    """
    trained, given = dataclasses.asdict(ckpt.config.features), dataclasses.asdict(cfg.features)
    changed = [f"features.{k}: {trained[k]!r} in the model, {given[k]!r} here"
               for k in trained if given.get(k) != trained[k]]  # fmt: skip
    if changed:
        raise UserError(
            f"'{source}' was trained on another front end: {'; '.join(changed)}. Its "
            "weights only work on their own features: drop the features.* overrides (the "
            "model's own are used), or train a model on the new front end"
        )
    cfg.model = ckpt.config.model
    return cfg


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "checkpoints").is_dir())


def resolve_run(path: str | Path) -> RunRef:
    """The run behind any path a user gives.

    - a run folder (has config.yaml or checkpoints/) -> that run, its best checkpoint;
    - `<run>/checkpoints/<x>.pt` -> the run, that checkpoint;
    - `<run>/export/` or `<run>/export/<file>` -> the run (and that exported file);
    - `<run>/rounds/round_<k>/grown.pt` -> the round's run (round_<k>), that checkpoint;
    - any other model file -> a run at its folder.

    Raises:
        UserError: the path does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"'{path}' does not exist; give a run folder (runs/<name>), a checkpoint (.pt) or an "
            "exported model (.onnx, .tflite)"
        )
    if path.is_dir():
        if path.name == "export" and _is_run_folder(path.parent):
            return RunRef(Run(path.parent))
        return RunRef(Run(path))
    parent = path.parent
    if parent.name in ("checkpoints", "export"):
        return RunRef(Run(parent.parent), path)
    return RunRef(Run(parent), path)
