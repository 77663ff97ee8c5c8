"""Export stage: write every deployable artifact of one model and its manifest.

`export_model` is the data-free core of `kws export`: given a torch model, its labels, its
front-end config and calibration features it writes

    model.onnx, model_int8.onnx                 (formats: onnx)
    model_float.tflite, model_int8.tflite       (formats: tflite or tflm)
    tflm/model_data.cc, .h, op_resolver.h       (formats: tflm)
    manifest.json (+ a copy in tflm/)

and returns where everything went plus the facts read back from the files (op list, int8
input/output quantization, measured TFLite Micro arena).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from kws.config import FeatureConfig
from kws.errors import UserError
from kws.export.keras_rebuild import to_nhwc
from kws.export.onnx_export import export_onnx, quantize_onnx
from kws.export.tflite_export import (
    Quantization,
    convert_float,
    convert_int8,
    io_quantization,
    tflite_ops,
)
from kws.export.tflm import c_name, measure_arena, write_tflm_files
from kws.io import atomic_write_bytes, atomic_write_json, file_sha256

FORMATS = ("onnx", "tflite", "tflm")
VERSIONED_PACKAGES = (
    "kws", "torch", "numpy", "onnx", "onnxruntime", "tensorflow-cpu", "ai-edge-litert",
    "tflite-micro",
)  # fmt: skip


@dataclass
class ExportArtifacts:
    """Paths written by `export_model` and facts read back from the exported files."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # role -> path
    ops: list[str] = field(default_factory=list)
    quantization: dict = field(default_factory=dict)  # {"input": {...}, "output": {...}}
    arena_bytes: int | None = None
    manifest: dict = field(default_factory=dict)

    def size_bytes(self, role: str) -> int | None:
        path = self.files.get(role)
        return path.stat().st_size if path is not None and path.is_file() else None


# Every name an export writes into its folder (`export_model`, then `write_report`): what a
# forced export removes first, so no file of the previous one is left to be taken for this one.
EXPORT_ENTRIES = (
    "model.onnx", "model_int8.onnx", "model_float.tflite", "model_int8.tflite", "tflm",
    "manifest.json", "report.md", "report.json",
)  # fmt: skip


def clear_export(out_dir: Path) -> None:
    """Remove a previous export's files from `out_dir` (`EXPORT_ENTRIES`; nothing else)."""
    for name in EXPORT_ENTRIES:
        path = Path(out_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def exported_checkpoint_sha256(export_dir: Path) -> str | None:
    """The SHA-256 of the checkpoint an export was made from, as its `manifest.json` records
    it; None without a manifest or that record (exports older than it)."""
    manifest = Path(export_dir) / "manifest.json"
    if not manifest.is_file():
        return None
    return (json.loads(manifest.read_text()).get("checkpoint") or {}).get("sha256")


def check_formats(formats: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate export format names; raises `UserError` naming the bad one."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(
            f"unknown export format '{bad[0] if bad else ''}'; choose from {', '.join(FORMATS)} "
            "(comma-separated, e.g. --formats onnx,tflite)"
        )
    return tuple(formats)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shaped an export (for its manifest)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def export_model(
    model: nn.Module,
    labels: list[str],
    feature_cfg: FeatureConfig,
    calibration: list[np.ndarray],
    out_dir: str | Path,
    *,
    formats: tuple[str, ...] = FORMATS,
    name: str = "kws",
    checkpoint: str | Path | None = None,
) -> ExportArtifacts:
    """Export `model` in `formats` under `out_dir` and write the manifest.

    Args:
        model: a built kws model (any family, any widths); read in eval mode on CPU.
        labels: class names in output order.
        feature_cfg: the front end the model was trained with (goes into the manifest).
        calibration: training-split feature batches `(batch, frames, coeffs)` float32 for
            int8 calibration (ONNX QDQ and the TFLite representative dataset).
        out_dir: destination folder (created).
        formats: any of "onnx", "tflite", "tflm" ("tflm" implies the int8 .tflite).
        name: model name used in C identifiers (`g_<name>_model_data`).
        checkpoint: the checkpoint file the model came from; its path and SHA-256 go into the
            manifest, so a run's demo can tell an export made from an older model
            (`kws.stream.backends.check_export_current`).
    """
    formats = check_formats(formats)
    model = model.cpu().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportArtifacts(out_dir=out)
    if "onnx" in formats:
        result.files["onnx_float"] = export_onnx(model, out / "model.onnx")
        result.files["onnx_int8"] = quantize_onnx(
            out / "model.onnx", out / "model_int8.onnx", calibration
        )
    if "tflite" in formats or "tflm" in formats:
        _export_tflite(model, calibration, out, formats, name, result)
    result.manifest = build_manifest(model, labels, feature_cfg, result, name)
    if checkpoint is not None:
        result.manifest["checkpoint"] = {"path": str(checkpoint), "sha256": file_sha256(checkpoint)}
    atomic_write_json(out / "manifest.json", result.manifest)
    result.files["manifest"] = out / "manifest.json"
    if "tflm" in formats:
        atomic_write_json(out / "tflm" / "manifest.json", result.manifest)
    return result


def _export_tflite(model, calibration, out: Path, formats, name: str, result) -> None:
    if "tflite" in formats:
        path = atomic_write_bytes(out / "model_float.tflite", convert_float(model))
        result.files["tflite_float"] = path
    int8 = convert_int8(model, calibration)
    result.files["tflite_int8"] = atomic_write_bytes(out / "model_int8.tflite", int8)
    result.ops = tflite_ops(int8)
    result.quantization = io_quantization(int8)
    if "tflm" in formats:
        for path in write_tflm_files(int8, result.ops, out / "tflm", name):
            result.files[f"tflm_{path.name}"] = path
        q = result.quantization["input"]
        probe = Quantization(q["scale"], q["zero_point"]).quantize(to_nhwc(calibration[0][:1]))
        result.arena_bytes = measure_arena(int8, probe)


def build_manifest(
    model: nn.Module, labels: list[str], feature_cfg: FeatureConfig, art: ExportArtifacts, name: str
) -> dict:
    """Everything a device needs to pair the model with the right front end and runtime."""
    int8 = art.files.get("tflite_int8")
    manifest = {
        "name": name,
        "labels": list(labels),
        "features": dataclasses.asdict(feature_cfg),
        "feature_shape": list(model.spec.input_shape),
        "model": dataclasses.asdict(model.spec.config),
        "files": {role: str(p.relative_to(art.out_dir)) for role, p in art.files.items()},
        "versions": package_versions(),
    }
    if int8 is not None:
        data = int8.read_bytes()
        manifest.update(
            {
                "tflite_int8_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "input": {**art.quantization["input"], "layout": "NHWC (1, frames, coeffs, 1)"},
                "output": art.quantization["output"],
                "ops": list(art.ops),
                "arena_bytes": art.arena_bytes,
                "c_array": f"g_{c_name(name)}_model_data",
            }
        )
    return manifest
