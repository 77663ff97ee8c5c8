"""Streaming stage: streaming keyword detection, sources, live demo and streaming evaluation.

`StreamingDetector` (detector.py) takes audio chunks from any `Source` (sources.py: WAV file,
stdin; microphone.py: a sound card through PortAudio), computes only the new feature frames, runs a
`Backend` (backends.py: torch, ONNX Runtime, LiteRT int8) every stride, and turns posteriors into
keyword events (recognize.py: smoothing, hysteresis and word segmentation, one event per word).
`kws demo` (demo.py) shows it live; `kws stream-eval` (evaluate.py, testset.py, report.py)
measures false accepts per hour, misses and latency, each with its count and 95% interval.
"""

from kws.stream.backends import Backend, load_backend
from kws.stream.detector import DetectorStats, Inference, KeywordEvent, StreamingDetector
from kws.stream.recognize import Decision, RecognizeCommands, is_keyword, recognize

__all__ = [
    "Backend",
    "Decision",
    "DetectorStats",
    "Inference",
    "KeywordEvent",
    "RecognizeCommands",
    "StreamingDetector",
    "is_keyword",
    "load_backend",
    "recognize",
]
