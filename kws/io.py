"""Atomic file writes: a temp file in the same folder, fsync, rename; staging folders.

A reader never sees a half-written file, and a crash leaves the previous version intact. The
result gets the permissions a plain `open(path, "w")` would give (0666 minus the umask), not
`mkstemp`'s private 0600, so a CI step or web server under another user can read exports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kws.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock, so no staging folder is ever judged abandoned
    fcntl = None


def _umask() -> int:
    # The only portable way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def staging_dir(target: Path, suffix: str) -> Path:
    """A new hidden folder beside `target` to build it in, then rename into place: with the
    permissions `mkdir` would give (0777 minus the umask), not `mkdtemp`'s private 0700, so a
    data set built there is readable by whoever may read its parent."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent))
    tmp.chmod(DIR_MODE)
    return tmp


# In a staging folder while its owner holds an flock on the folder: the kernel drops the lock
# when the process ends, even killed by SIGKILL, so an unlocked folder with this file is dead.
STAGING_OWNER_FILE = ".kws-staging-owner"
# Staging folders of kws versions that took no lock count as abandoned after this long.
STAGING_UNLOCKED_AGE_S = 3600.0


def claim_staging(tmp: Path) -> int | None:
    """Lock a new `staging_dir` folder for this process, then mark it claimed, so that
    `sweep_staging` can tell it from a dead one. Returns the open folder's descriptor (None
    where flock is missing or refused): keep it open until the work ends, then close it."""
    if fcntl is None:
        return None
    fd = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits out a sweep that is looking at it right now
    except OSError:  # a file system without flock: no owner file, so never swept as dead
        os.close(fd)
        return None
    (tmp / STAGING_OWNER_FILE).write_text(f"{os.getpid()}\n")
    return fd


def sweep_staging(target: Path, suffix: str) -> list[Path]:
    """Remove the `staging_dir(target, suffix)` folders of earlier runs that died (killed, say
    by SIGTERM, or a machine crash); return them. A folder is removed only when no process
    holds its lock and it was claimed (`claim_staging`: its owner ended without finishing),
    or, made by a kws that took no lock, when it is older than `STAGING_UNLOCKED_AGE_S`. A
    live owner holds its lock from just after creating its folder; in that instant the folder
    is new and unclaimed, so it is kept either way."""
    if fcntl is None:
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    swept = []
    for folder in sorted(target.parent.glob(f".{target.name}.*{suffix}")):
        if not pattern.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            claimed = (folder / STAGING_OWNER_FILE).is_file()
            if claimed or time.time() - folder.stat().st_mtime > STAGING_UNLOCKED_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
                swept.append(folder)
        except OSError:
            pass  # locked: a live owner (or no flock here), keep it
        finally:
            os.close(fd)
    return swept


@contextlib.contextmanager
def staged_folder(target: Path, suffix: str) -> Iterator[Path]:
    """Build `target` in a new claimed staging folder beside it (`staging_dir`, then
    `claim_staging`): yields the folder, which the body hands to `publish_staging` once it is
    complete. The claim ends either way.

    Raises:
        OSError: the folder cannot be made beside `target`.
        BaseException: whatever the body raises, re-raised after the folder is removed.
    """
    tmp = staging_dir(target, suffix)
    lock = claim_staging(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def publish_staging(tmp: Path, target: Path) -> None:
    """Rename the complete staging folder `tmp` to `target` (absent, or an empty folder that
    it replaces): the folder appears complete or not at all. The owner mark goes first, while
    the claim still holds, so no `sweep_staging` can take the folder in between.

    Raises:
        OSError: `target` is a file or a folder with files in it (callers check first).
    """
    (tmp / STAGING_OWNER_FILE).unlink(missing_ok=True)
    if target.is_dir():
        target.rmdir()
    os.rename(tmp, target)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write `path` atomically: `write(handle)` fills a temp file that replaces `path`.

    Raises:
        OSError: when the folder cannot be created or written (the old file is untouched).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (see `atomic_write`)."""
    return atomic_write(path, lambda h: h.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (see `atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, strict: bool = False) -> Path:
    """Write indented JSON atomically; numpy/torch values via their `tolist()`. `strict`: NaN
    and infinities (undefined rates, say a latency with no detection) become null, so any JSON
    reader takes the file (Python's NaN is not JSON); without it they stay, for files kws reads
    back itself."""
    text = json.dumps(obj, default=json_default)
    if strict:
        obj = _finite(json.loads(text))
    return atomic_write_text(
        path, json.dumps(obj, indent=2, default=json_default, allow_nan=not strict) + "\n"
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line and fsync; a crash can lose at most this line, never earlier ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(obj, default=json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Every complete JSON line of `path` (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line can be torn: it was being appended at the crash
    return rows


def json_default(obj: Any) -> Any:
    """JSON fallback for numpy/torch scalars and arrays and paths.

    Raises:
        TypeError: a value JSON cannot hold.
    """
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_SAID: set[str] = set()  # warnings already given in this process


def warn_once(message: str) -> None:
    """Print `message` on stderr the first time this process gives it: a verb that trains many
    times (growth's rounds, a comparison's cells) says a thing once."""
    if message not in _SAID:
        _SAID.add(message)
        print(message, file=sys.stderr)


def check_writable(folder: str | Path, what: str) -> Path:
    """Make sure `folder` (or its nearest existing parent) can be written, before slow work.

    Raises:
        UserError: naming the folder and the fix (instead of a PermissionError after the work).
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write {what} into '{folder}' ('{probe}' is not writable); fix its "
            "permissions or choose another folder (--out, runs_dir=..., or a new name=...)"
        )
    return folder


def other_entries(folder: str | Path, ignore: tuple[str, ...] = ()) -> str:
    """What a folder already holds, for a refusal to write into it: '' when it is missing or
    empty (hidden files and `ignore` names aside), else its first names ('a, b, c, ...')."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    names = [n for n in names if not n.startswith(".") and n not in ignore]
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
