"""Atomic JSON: strict files hold no NaN (not JSON), and numpy values are written."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kws.io import atomic_write_json


def _no_constants(name: str):
    raise AssertionError(f"{name} in a strict JSON file")


def test_strict_json_writes_undefined_numbers_as_null(tmp_path):
    """stream_eval.json held NaN latencies when nothing was detected: invalid for JSON readers."""
    data = {"latency_ms": float("nan"), "rates": [math.inf, 1.5], "n": np.float32("nan"),
            "array": np.array([np.nan, 2.0]), "kept": 3}  # fmt: skip
    path = atomic_write_json(tmp_path / "s.json", data, strict=True)
    read = json.loads(path.read_text(), parse_constant=_no_constants)
    assert read == {"latency_ms": None, "rates": [None, 1.5], "n": None, "array": [None, 2.0],
                    "kept": 3}  # fmt: skip
    loose = atomic_write_json(tmp_path / "l.json", data)  # files kws reads back keep NaN
    with pytest.raises(AssertionError, match="NaN"):
        json.loads(loose.read_text(), parse_constant=_no_constants)
