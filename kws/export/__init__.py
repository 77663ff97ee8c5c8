"""Export stage: ONNX (float + int8 QDQ), int8 TFLite from a Keras rebuild, TFLite Micro files.

`export_run(checkpoint)` is what `kws export` calls; `export_model(...)` is its data-free core.
TensorFlow, ONNX Runtime, LiteRT and TFLite Micro are imported lazily (the `export` extra).
"""

from kws.export.artifacts import FORMATS, ExportArtifacts, build_manifest, export_model
from kws.export.evaluate import BackendAccuracy, evaluate_backends
from kws.export.report import ExportReport, render_markdown, write_report
from kws.export.run import export_run, int8_gate

__all__ = [
    "FORMATS",
    "BackendAccuracy",
    "ExportArtifacts",
    "ExportReport",
    "build_manifest",
    "evaluate_backends",
    "export_model",
    "export_run",
    "int8_gate",
    "render_markdown",
    "write_report",
]
