"""Backends: ONNX Runtime and LiteRT int8 models from `kws export` agree with torch, and the
detector hears the same keywords through each of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kws.config import FeatureConfig
from kws.errors import UserError
from kws.run import resolve_run
from kws.stream.backends import EXPORT_FILES, choose_kind, load_backend
from kws.stream.detector import StreamingDetector, run_detector
from tests.stream.tones import (
    LABELS,
    make_dataset,
    synth_stream,
    trained_tone_model,
    write_run,
)


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    # The export stage's own pieces, without the parts streaming does not read (ONNX int8,
    # float TFLite, TFLM), to keep this fixture short.
    from kws.export.artifacts import ExportArtifacts, build_manifest
    from kws.export.onnx_export import export_onnx
    from kws.export.tflite_export import convert_int8, io_quantization
    from kws.io import atomic_write_bytes, atomic_write_json

    run_dir = write_run(tmp_path_factory.mktemp("exported_run"))
    out = run_dir / "export"
    ckpt = trained_tone_model()
    model, labels = ckpt.build_model(), ckpt.labels
    int8 = convert_int8(model, [make_dataset(64, seed=21)[0]])
    art = ExportArtifacts(out_dir=out, quantization=io_quantization(int8))
    art.files["onnx_float"] = export_onnx(model, out / "model.onnx")
    art.files["tflite_int8"] = atomic_write_bytes(out / "model_int8.tflite", int8)
    atomic_write_json(
        out / "manifest.json", build_manifest(model, labels, FeatureConfig(), art, "t")
    )
    return run_dir


@pytest.mark.parametrize("kind, atol", [("onnx", 1e-4), ("tflite", 0.08)])
def test_exported_backends_match_torch(exported_run, kind, atol):
    reference = load_backend("torch", exported_run)
    backend = load_backend(kind, exported_run)
    assert backend.kind == kind and backend.labels == LABELS
    assert backend.feature_cfg == FeatureConfig()
    xs, _ = make_dataset(40, seed=9)
    for x in xs:
        expected, got = reference(x[None]), backend(x[None])
        assert got.shape == (len(LABELS),) and got.sum() == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(got, expected, atol=atol)
        assert np.argmax(got) == np.argmax(expected) or expected.max() < 0.6


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_detector_hears_keywords_through_each_backend(exported_run, kind):
    words = ["no", "yes", "_unknown_", "yes"]
    audio, _ = synth_stream(words, seed=4)
    detector = StreamingDetector(load_backend(kind, exported_run))
    events = [i.event for i in run_detector(detector, np.array_split(audio, 30)) if i.event]
    assert [e.label for e in events] == ["no", "yes", "yes"]


def test_model_files_resolve_by_suffix_and_errors_name_the_fix(exported_run, tmp_path):
    onnx_path = exported_run / "export" / "model.onnx"
    assert choose_kind(resolve_run(onnx_path), None) == "onnx"
    assert load_backend(None, exported_run / "export" / "model_int8.tflite").kind == "tflite"
    bare = write_run(tmp_path / "bare")
    with pytest.raises(UserError, match="kws export"):
        load_backend("onnx", bare)  # a run folder without export/
    with pytest.raises(UserError, match="is a onnx model"):
        load_backend("tflite", onnx_path)
    with pytest.raises(UserError, match="unknown backend"):
        load_backend("tensorrt", exported_run)
    lonely = tmp_path / "lonely" / "model.onnx"
    lonely.parent.mkdir()
    lonely.write_bytes(onnx_path.read_bytes())
    with pytest.raises(UserError, match="manifest"):
        load_backend("onnx", lonely)


def test_auto_picks_the_fastest_exported_backend(exported_run, tmp_path):
    """ONNX Runtime streams ~5x faster than torch per window (benchmarks/RESULTS.md)."""
    assert load_backend("auto", exported_run).kind == "onnx"
    assert load_backend(None, write_run(tmp_path / "unexported")).kind == "torch"
    assert load_backend(None, exported_run / "checkpoints" / "best.pt").kind == "torch"


def test_a_stale_export_is_never_taken_for_the_run_s_model(exported_run, tmp_path, caplog):
    """After `kws train --force` (or --resume) the old export stayed and `kws demo` streamed the
    old model through ONNX Runtime. The manifest's checkpoint SHA-256 tells them apart."""
    import logging
    import shutil

    from kws.io import file_sha256

    run = Path(shutil.copytree(exported_run, tmp_path / "run"))
    best, manifest_path = run / "checkpoints" / "best.pt", run / "export" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["checkpoint"] = {"path": str(best), "sha256": file_sha256(best)}
    manifest_path.write_text(json.dumps(manifest))
    assert load_backend("auto", run).kind == "onnx"  # the export is this model
    retrained = trained_tone_model()
    retrained.state_dict = {k: v + 0.01 if v.is_floating_point() else v
                            for k, v in retrained.state_dict.items()}  # fmt: skip
    retrained.save(best)
    with caplog.at_level(logging.WARNING):
        assert load_backend("auto", run).kind == "torch"
    assert "was exported from another model" in caplog.text and "--force" in caplog.text
    for kind in ("onnx", "tflite"):
        with pytest.raises(UserError, match=r"kws export .* --force`, or use --backend torch"):
            load_backend(kind, run)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the export's own file, named: as asked, not silently
        assert load_backend(None, run / "export" / EXPORT_FILES["onnx"]).kind == "onnx"
    assert "was exported from another model" in caplog.text and "as asked" in caplog.text
