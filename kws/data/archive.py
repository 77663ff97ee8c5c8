"""Data stage: verifying and safely extracting .tar.gz archives (the downloader's second half).

Every member is checked before anything is written (no absolute paths, no '..', no links, no
special files, nothing resolving outside the target), the whole stream is read so gzip's CRC
is checked, and extraction goes to a temp folder renamed into place only when complete.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from rich import progress as rp
from rich.console import Console

from kws.errors import UserError
from kws.io import publish_staging, staged_folder, sweep_staging

MARKER_NAME = ".kws-complete"
CHUNK_BYTES = 1 << 20
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
CORRUPT_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)


class MemberWriteError(Exception):
    """Writing archive member `name` (None: between members) failed with the OSError `error`;
    not corruption, which tarfile and gzip report: e.g. a file and a folder of one name."""

    def __init__(self, name: str | None, error: OSError):
        super().__init__(name, error)
        self.name, self.error = name, error


def verify_archive(part: Path, total: int | None, show: bool) -> None:
    """Size check, then read every member (gzip CRC, tar headers) and check each one is safe.

    Raises:
        UserError: a short, long or corrupt file, or an unsafe member (the file is kept).
    """
    size = part.stat().st_size
    if total is not None and size < total:
        raise UserError(
            f"{part} has {size} of {total} bytes (the transfer stopped early); it is kept: "
            "run the same command again to resume"
        )
    if total is not None and size > total:
        raise UserError(f"{part} has {size} bytes, more than the {total} expected; delete it")
    try:
        with progress_bar(show) as bar, open(part, "rb") as raw:
            task = bar.add_task(f"verify {part.name}", total=size)
            reader = CountingReader(raw, lambda n: bar.update(task, completed=n))
            walk_archive(reader)
    except CORRUPT_ERRORS as exc:
        fix = (
            "its size is right, so resuming cannot repair it: delete it and rerun"
            if total is not None
            else "the server reported no size, so it may be incomplete: rerun to resume, and "
            "delete it if that does not help"
        )
        raise UserError(
            f"{part} is corrupt ({type(exc).__name__}: {exc}); it is kept, but {fix}"
        ) from None


def walk_archive(reader, dest: Path | None = None) -> int:
    """Read a .tar.gz stream to its very end, checking every member (before writing it, when
    extracting into `dest`); return the member count. The gzip CRC is checked at the end.

    Raises:
        tarfile.ReadError: an archive without members (corrupt archives raise tarfile's or
        gzip's own errors).
        MemberWriteError: a member could not be written into `dest`.
    """
    count, writing = 0, None
    with gzip.GzipFile(fileobj=reader, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:

        def checked():
            nonlocal count, writing
            for member in tar:
                check_member(member, dest)
                count += 1
                writing = member.name  # extractall writes it between this yield and the next
                yield member
                writing = None

        if dest is None:
            for _ in checked():  # a stream skips member data by reading it
                pass
        else:  # extractall sets folder permissions last: a read-only folder cannot block files
            try:
                tar.extractall(dest, members=checked(), **_TAR_FILTER)
            except CORRUPT_ERRORS:
                raise  # gzip.BadGzipFile is an OSError too, but it is corruption
            except OSError as exc:
                raise MemberWriteError(writing, exc) from exc
        while gz.read(CHUNK_BYTES):  # past the tar end marker, up to the gzip CRC and size
            pass
    if count == 0:
        raise tarfile.ReadError("the archive has no members")
    return count


class CountingReader:
    """File wrapper that hashes and counts what is read (tar and gzip only read forward)."""

    def __init__(self, raw, report=None):
        self.raw, self.report, self.position = raw, report, 0
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.position += len(data)
        if self.report:
            self.report(self.position)
        return data


def check_member(member: tarfile.TarInfo, dest: Path | None = None) -> None:
    """Refuse a member that could write outside `dest` or is not a plain file or folder.

    Raises:
        UserError: naming the member and what makes it unsafe.
    """
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        problem = "has an absolute path"
    elif ".." in parts or ".." in name.split("\\"):
        problem = "climbs out of the dataset folder with '..'"
    elif member.issym() or member.islnk():
        problem = f"is a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
    elif not (member.isreg() or member.isdir()):
        problem = "is a device, FIFO or other special file"
    elif dest is not None and not _inside(dest, dest / name):
        problem = "resolves outside the dataset folder"
    else:
        return
    raise UserError(
        f"unsafe archive member {name!r}: it {problem}; refusing to extract. This is not a "
        "genuine Speech Commands archive: delete the archive in the data root and check the "
        "base URL"
    )


def _inside(folder: Path, path: Path) -> bool:
    # Lexical check: the fresh temp folder holds no links, and links in the archive are refused.
    base = os.path.normpath(folder)
    target = os.path.normpath(path)
    return target == base or target.startswith(base + os.sep)  # "." itself is a member too


def extract_archive(
    archive_path: Path,
    dataset: Path,
    marker: dict,
    show: bool,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Extract into a temp folder next to `dataset`, `check(temp folder)` what came out (it
    raises to refuse it), write the marker (`marker` plus the archive's name, size, SHA-256
    and member count), then rename it into place.

    Raises:
        UserError: a corrupt archive, an unsafe member, or a member that cannot be written
            (named, with the archive and what to do), or what `check` raises; nothing is left
            behind.
    """
    for stale in dataset.parent.glob(f".{dataset.name}.extract-*"):  # an older kws's naming
        shutil.rmtree(stale, ignore_errors=True)
    sweep_staging(dataset, ".extract")  # killed runs' folders; a live extraction's is locked
    try:
        with staged_folder(dataset, ".extract") as tmp:
            with progress_bar(show) as bar, open(archive_path, "rb") as raw:
                task = bar.add_task(
                    f"extract {archive_path.name}", total=archive_path.stat().st_size
                )
                reader = CountingReader(raw, lambda n: bar.update(task, completed=n))
                count = walk_archive(reader, tmp)
            if check is not None:
                check(tmp)  # before the marker: a refused extraction is never taken for done
            marker = {
                **marker,
                "archive": archive_path.name,
                "size_bytes": reader.position,
                "sha256": reader.sha256.hexdigest(),
                "members": count,
            }
            (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            publish_staging(tmp, dataset)  # the folder appears complete, or not at all
    except CORRUPT_ERRORS as exc:
        raise UserError(
            f"{archive_path} is corrupt ({type(exc).__name__}: {exc}); delete it and rerun "
            "to download it again"
        ) from None
    except MemberWriteError as exc:
        raise UserError(_write_failure(archive_path, dataset.parent, exc)) from None
    fsync_dir(dataset.parent)


def _write_failure(archive_path: Path, folder: Path, exc: MemberWriteError) -> str:
    """Why member `exc.name` could not be written, and the fix: the archive was verified, so
    it keeps its name and every rerun would fail the same way unless the message says what to
    change."""
    error = exc.error
    member = f"member {exc.name!r} of " if exc.name is not None else ""
    what = (
        f"cannot extract {member}{archive_path} "
        f"({errno.errorcode.get(error.errno, 'error')}: {error.strerror or error})"
    )
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{what}: the disk is full; free space in {folder} (the clips take about as "
            "much again as the archive) and rerun, the archive is kept"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{what}: {folder} is not writable; fix its permissions and rerun"
    return (
        f"{what}: its members cannot all be written (e.g. a file and a folder of the same "
        f"name), so it is not a genuine Speech Commands archive; delete {archive_path} and "
        "rerun to download it again, and check the base URL (--base-url / $KWS_GSC_BASE_URL) "
        "if the mirror serves it again"
    )


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def progress_bar(enabled: bool):
    """A byte-progress bar on stderr (disabled: a no-op context)."""
    columns = (
        rp.BarColumn(),
        rp.DownloadColumn(),
        rp.TransferSpeedColumn(),
        rp.TimeRemainingColumn(),
    )
    return rp.Progress(
        rp.TextColumn("{task.description}"),
        *columns,
        console=Console(stderr=True),
        disable=not enabled,
    )
