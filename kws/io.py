"""Atomic file writes and checkpoints as plain data (never pickled modules).

A checkpoint is a dict: `config` (resolved recipe as nested plain data, including the model's
current widths), `state_dict`, `labels`, `metrics`, `growth` history and free-form `extra`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from kws.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated or not a kws checkpoint."""


def _atomic_write(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, lambda h: h.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line; a crash can lose at most this line, never earlier ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(obj, default=_json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_plain(obj: Any) -> Any:
    """Plain Python data (dict/list/str/int/float/bool/None, tensors kept) for safe loading.

    numpy scalars and arrays would need unsafe globals under `weights_only=True`.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, int) else k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return obj.tolist()
    return obj


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write a checkpoint dict atomically as plain data; tensors are moved to CPU first."""
    payload = to_plain({k: v for k, v in checkpoint.items() if k != "optimizer"})
    if "optimizer" in checkpoint:  # keep its int keys and tensors exactly
        payload["optimizer"] = checkpoint["optimizer"]
    payload["state_dict"] = {k: v.detach().cpu() for k, v in checkpoint["state_dict"].items()}
    payload.setdefault("format", "kws-checkpoint-1")

    def write(handle):
        torch.save(payload, handle)

    return _atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict:
    """Load a kws checkpoint safely (`weights_only=True`), with a clear error when broken."""
    path = Path(path)
    if path.is_dir():
        for candidate in ("checkpoints/best.pt", "checkpoints/last.pt", "best.pt", "last.pt"):
            if (path / candidate).is_file():
                path = path / candidate
                break
        else:
            raise CheckpointError(f"no checkpoint found in run directory '{path}'")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickled objects ...
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or not a kws checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); retrain or use checkpoints/last.pt"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"'{path}' is not a kws checkpoint (missing state_dict/config)")
    return ckpt
