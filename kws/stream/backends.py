"""Streaming stage: one call signature over torch, ONNX Runtime and LiteRT (int8 TFLite) models.

`load_backend(kind, path)` accepts any path `kws.run.resolve_run` understands (a run folder: its
checkpoint for torch, the files `kws export` wrote for onnx/tflite; or a model file `.pt`,
`.onnx`, `.tflite`). A backend maps features `(1, frames, coeffs)` float32 to class
probabilities `(classes,)` and carries the labels and front-end config the model was trained
with (from the checkpoint, or the export's `manifest.json`), so a model is never paired with the
wrong front end. The runtimes themselves are `kws.export`'s (one layer for exported files).
`kind="auto"` picks the fastest one present: ONNX Runtime, then LiteRT, then torch (measured
per window on one thread in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kws.config import FeatureConfig
from kws.errors import UserError
from kws.export.artifacts import exported_checkpoint_sha256
from kws.export.onnx_export import onnx_logits, onnx_session
from kws.export.tflite_export import litert_interpreter, litert_logits
from kws.io import file_sha256
from kws.run import RunRef, resolve_run

KINDS = ("torch", "onnx", "tflite")
EXPORT_FILES = {"onnx": "model.onnx", "tflite": "model_int8.tflite"}
SUFFIX_KINDS = {".pt": "torch", ".pth": "torch", ".onnx": "onnx", ".tflite": "tflite"}
AUTO_ORDER = ("onnx", "tflite", "torch")  # fastest first
log = logging.getLogger(__name__)


@dataclass
class Backend:
    """A loaded model behind one call: features `(1, frames, coeffs)` -> probabilities.

    Attributes:
        kind: torch | onnx | tflite.
        labels: class names in output order.
        feature_cfg: the front end the model expects.
        path: the model file (or checkpoint) it was loaded from.
        predict: the function doing the work.
    """

    kind: str
    labels: list[str]
    feature_cfg: FeatureConfig
    path: Path
    predict: Callable[[np.ndarray], np.ndarray]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Features `(1, frames, coeffs)` float32 -> probabilities `(classes,)` float32."""
        return self.predict(np.ascontiguousarray(features, dtype=np.float32))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities of a logit vector `(classes,)`."""
    shifted = np.exp(logits - np.max(logits))
    return (shifted / shifted.sum()).astype(np.float32)


def _export_file(ref: RunRef, kind: str) -> Path:
    if ref.model_path is not None and ref.kind == kind:
        return ref.model_path
    return ref.run.export_dir / EXPORT_FILES[kind]


def _available(ref: RunRef, kind: str) -> bool:
    if kind == "torch":
        return ref.kind in ("checkpoint", "run")
    if ref.kind not in ("run", kind):
        return False
    try:
        __import__({"onnx": "onnxruntime", "tflite": "ai_edge_litert"}[kind])
    except ImportError:
        return False
    return _export_file(ref, kind).is_file()


def stale_export(ref: RunRef) -> str | None:
    """Why a run's export no longer is its model (None when it is, or cannot be told): the
    manifest's checkpoint SHA-256 (`kws export` writes it) differs from the run's best
    checkpoint's, as after `kws train --force` or `--resume`. `ref` is the run, or a file of
    its export folder (`<run>/export/model.onnx`). Exports older than that record are taken as
    they are."""
    in_export = ref.kind in KINDS[1:] and ref.model_path.parent.resolve() == (
        ref.run.export_dir.resolve()
    )
    made_from = exported_checkpoint_sha256(ref.run.export_dir)
    if not (ref.kind == "run" or in_export) or made_from is None:
        return None
    try:
        best = ref.run.checkpoint_path("best")
    except UserError:
        return None
    if made_from == file_sha256(best):
        return None
    return (
        f"'{ref.run.export_dir}' was exported from another model than '{best}' (the run was "
        f"trained again since); refresh it with `kws export {ref.run.root} --force`"
    )


def choose_kind(ref: RunRef, kind: str | None) -> str:
    """The backend kind for a resolved path: the asked one, or the fastest available. A run's
    exported files are used only while they are its model (`stale_export`).

    Raises:
        UserError: unknown kind, a model file of another kind, a missing or stale export.
    """
    if ref.kind in KINDS[1:] and (stale := stale_export(ref)) is not None:
        # The user named this very file: stream it as asked, but never silently.
        log.warning("%s; streaming '%s' as asked", stale, ref.model_path)
    if kind in (None, "auto"):
        if ref.kind in KINDS[1:]:
            return ref.kind
        if ref.kind == "checkpoint":
            return "torch"
        stale = stale_export(ref)
        if stale is not None:
            log.warning("%s; using the checkpoint (torch) meanwhile", stale)
            return "torch"
        return next(k for k in AUTO_ORDER if _available(ref, k))
    if kind not in KINDS:
        raise UserError(f"unknown backend '{kind}'; choose one of auto, {', '.join(KINDS)}")
    expected = {"checkpoint": "torch", "onnx": "onnx", "tflite": "tflite"}.get(ref.kind)
    if expected is not None and expected != kind:
        raise UserError(f"'{ref.model_path}' is a {expected} model but backend {kind} was asked")
    if kind != "torch" and not _export_file(ref, kind).is_file():
        raise UserError(
            f"no {kind} model at '{_export_file(ref, kind)}'; run `kws export {ref.run.root}` first"
        )
    stale = stale_export(ref) if kind != "torch" and ref.kind == "run" else None
    if stale is not None:
        raise UserError(f"{stale}, or use --backend torch")
    return kind


def read_manifest(model_path: Path) -> dict:
    """The `manifest.json` next to an exported model.

    Raises:
        UserError: the manifest is missing or has no front end / labels.
    """
    manifest = model_path.parent / "manifest.json"
    if not manifest.is_file():
        raise UserError(
            f"'{manifest}' is missing: an exported model needs its manifest (labels, front end); "
            "re-run `kws export`"
        )
    data = json.loads(manifest.read_text())
    if not isinstance(data.get("features"), dict) or not data.get("labels"):
        raise UserError(f"'{manifest}' has no 'features' or 'labels'; re-run `kws export`")
    return data


def feature_cfg_from_dict(values: dict) -> FeatureConfig:
    """A `FeatureConfig` from manifest/checkpoint data, ignoring derived keys."""
    names = set(FeatureConfig.__dataclass_fields__)
    return FeatureConfig(**{k: v for k, v in values.items() if k in names})


def _with_threads(num_threads: int | None, fn: Callable) -> Callable:
    """Run `fn` with torch's process-wide thread count set for this call only."""

    def call(*args):
        previous = torch.get_num_threads()
        if num_threads and previous != num_threads:
            torch.set_num_threads(num_threads)
        try:
            return fn(*args)
        finally:
            if num_threads and previous != num_threads:
                torch.set_num_threads(previous)

    return call


def _frozen(model, input_shape: tuple[int, int]):
    """The model traced for the one window shape streaming uses and frozen (BN folded, no
    Python per module): about 2x faster per window on one CPU thread. Falls back to the eager
    model where tracing fails."""
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer notes about shape arithmetic in SamePad
            return torch.jit.freeze(torch.jit.trace(model, torch.zeros(1, *input_shape)))
    except Exception:  # noqa: BLE001 - a torch without TorchScript: stay eager
        return model


def load_torch(ref: RunRef, num_threads: int | None) -> Backend:
    """The checkpoint's model, traced and frozen, one thread per call by default."""
    ckpt = ref.checkpoint()
    model = _frozen(ckpt.build_model(), ckpt.spec.input_shape)

    def predict(features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(features))[0], dim=-1).numpy()

    path = ref.model_path or ref.run.checkpoint_path("best")
    return Backend("torch", ckpt.labels, ckpt.config.features, path,
                   _with_threads(num_threads, predict))  # fmt: skip


def load_onnx(ref: RunRef, num_threads: int | None) -> Backend:
    """The exported float ONNX graph under ONNX Runtime."""
    path = _export_file(ref, "onnx")
    manifest = read_manifest(path)
    session = onnx_session(path, threads=num_threads or 0)

    def predict(features: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(onnx_logits(session, features), np.float32).reshape(-1))

    return Backend("onnx", list(manifest["labels"]), feature_cfg_from_dict(manifest["features"]),
                   path, predict)  # fmt: skip


def load_tflite(ref: RunRef, num_threads: int | None) -> Backend:
    """The exported full-int8 .tflite under LiteRT (input quantized, output dequantized)."""
    path = _export_file(ref, "tflite")
    manifest = read_manifest(path)
    interpreter = litert_interpreter(path.read_bytes(), threads=num_threads or 1)

    def predict(features: np.ndarray) -> np.ndarray:
        return softmax(litert_logits(interpreter, features).astype(np.float32).reshape(-1))

    return Backend("tflite", list(manifest["labels"]),
                   feature_cfg_from_dict(manifest["features"]), path, predict)  # fmt: skip


def load_backend(kind: str | None, path: str | Path, num_threads: int | None = 1) -> Backend:
    """Load a model for streaming inference.

    Args:
        kind: torch | onnx | tflite, or None/"auto" (the fastest available for a run folder;
            from the suffix for a model file).
        path: run folder, checkpoint or exported model file.
        num_threads: CPU threads per inference (default 1: a single small window is
            latency-bound, and more threads only contend with the audio thread).

    Raises:
        UserError: the path or the asked backend's files do not exist.
        MissingExtraError: the runtime of the asked backend is not installed.
    """
    ref = resolve_run(path)
    kind = choose_kind(ref, kind)
    loader = {"torch": load_torch, "onnx": load_onnx, "tflite": load_tflite}[kind]
    return loader(ref, num_threads)
