"""Download, verify and safely extract the Google Speech Commands archives (Warden 2018).

The flow is `<root>/<archive>.part` (streamed, resumed with HTTP Range) -> verified (size,
gzip CRC, every tar member read, every member safe) -> renamed to `<root>/<archive>` ->
extracted into a temp folder in `root` -> marker `.kws-complete` written -> folder renamed to
`<root>/speech_commands_<version>`. Every step can be interrupted and rerun: a partial file is
resumed, a verified archive is extracted again, a completed folder is returned untouched.
An archive copied in by hand as `<root>/<archive>` is extracted (and checked) without a download.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError

from kws.data.archive import (
    CHUNK_BYTES,
    MARKER_NAME,
    extract_archive,
    progress_bar,
    verify_archive,
)
from kws.data.gsc import SILENCE_LABEL, UNKNOWN_LABEL
from kws.errors import UserError
from kws.io import other_entries

DEFAULT_BASE_URL = "http://download.tensorflow.org/data/"
MIRROR_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"
BASE_URL_ENV = "KWS_GSC_BASE_URL"
VERSIONS = ("v0.01", "v0.02")
# The short names the CLI and README use; the archives are named after the long ones.
VERSION_ALIASES = {"v1": "v0.01", "v2": "v0.02"}
_RETRY_PAUSE_S = 2.0  # multiplied by the attempt number; tests set it to 0

# Published archive sizes (as Google serves them); None: not published, trust the server's.
_PUBLISHED_SIZE_BYTES = {
    ("v0.01", False): None,
    ("v0.01", True): None,
    ("v0.02", False): 2_428_923_189,
    ("v0.02", True): 112_563_277,
}
# Python >= 3.11.4 / 3.10.12 ship tarfile's "data" filter; our own checks run first either way.
# What a damaged gzip/tar stream raises (a truncated one: EOFError); other OSErrors such as a
# full disk are not corruption and propagate unchanged.


@dataclass(frozen=True)
class GscArchive:
    """One downloadable archive: `filename` on the server, `folder` it is extracted into."""

    version: str
    test_set: bool
    filename: str
    folder: str
    size_bytes: int | None


class _Interrupted(Exception):
    """The transfer stopped early; the partial file is valid and can be resumed."""


def normalize_version(version: str) -> str:
    """ "v2", "2", "v0.02" or "0.02" -> "v0.02" (and the same for v1 / v0.01).

    Raises:
        UserError: an unknown version name.
    """
    normalized = "v" + str(version).strip().lower().removeprefix("v")
    normalized = VERSION_ALIASES.get(normalized, normalized)
    if normalized not in VERSIONS:
        names = ", ".join(f"{short} (= {long})" for short, long in VERSION_ALIASES.items())
        raise UserError(
            f"unknown Speech Commands version {version!r}; choose one of {', '.join(VERSIONS)}, "
            f"or their short names {names}"
        )
    return normalized


def gsc_archive(version: str, test_set: bool = False) -> GscArchive:
    """Describe the archive of `version` (see `normalize_version` for the accepted names)."""
    normalized = normalize_version(version)
    stem = f"speech_commands_test_set_{normalized}" if test_set else f"speech_commands_{normalized}"
    size = _PUBLISHED_SIZE_BYTES[(normalized, test_set)]
    return GscArchive(normalized, test_set, f"{stem}.tar.gz", stem, size)


def resolve_base_url(base_url: str | None = None) -> str:
    """`base_url`, else $KWS_GSC_BASE_URL, else the official host; always ends with "/".

    Raises:
        UserError: a URL that is not http(s).
    """
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not re.match(r"^https?://", url):
        raise UserError(
            f"base URL {url!r} is not http(s); pass e.g. {DEFAULT_BASE_URL} (or copy the "
            "archive into the data root by hand and rerun: it is then extracted without download)"
        )
    return url if url.endswith("/") else url + "/"


def expected_size_bytes(archive: GscArchive, base_url: str) -> int | None:
    """Published size for the official hosts; a custom mirror's own size is trusted otherwise."""
    official = {DEFAULT_BASE_URL, MIRROR_BASE_URL, DEFAULT_BASE_URL.replace("http:", "https:")}
    return archive.size_bytes if base_url in official else None


def download_gsc(
    version: str,
    root: Path,
    *,
    test_set: bool = False,
    base_url: str | None = None,
    progress: bool = True,
    timeout_s: float = 60,
    size_bytes: int | None = None,
    retries: int = 2,
    keep_archive: bool = True,
) -> Path:
    """Download, verify and extract one GSC archive; return its dataset folder.

    Args:
        version: "v0.01" or "v0.02" (or "v1" / "v2").
        root: data root; receives the archive and the folder `speech_commands_<version>` (or
            `speech_commands_test_set_<version>`).
        test_set: fetch the official test-set archive instead of the full dataset.
        base_url: server folder holding the archives; None: $KWS_GSC_BASE_URL or the official host.
        progress: show a progress bar (only when stderr is a terminal).
        timeout_s: socket timeout for connecting and for each read.
        size_bytes: expected archive size; None: the published size on the official hosts,
            else the size the server reports.
        retries: automatic resumes after a dropped connection before giving up.
        keep_archive: keep the .tar.gz after a successful extraction.

    Raises:
        UserError: unknown version, a `root` that is a file or cannot be created, network/HTTP
            failure (partial file kept for resuming), size mismatch, corrupt archive, an unsafe
            member or one that cannot be extracted (named in the message).
    """
    archive = gsc_archive(version, test_set)
    root = _data_root(Path(root).expanduser())
    dataset = root / archive.folder
    if (dataset / MARKER_NAME).is_file():
        _check_clips(dataset, root / archive.filename, extracted=True)
        return dataset  # done before: no network, no extraction
    if dataset.exists():
        raise UserError(
            f"{dataset} exists but has no {MARKER_NAME} marker (an extraction not made by kws, "
            f"or an old one); delete it and rerun, or point data.root at it to use it as it is"
        )
    base = resolve_base_url(base_url)
    expected = size_bytes if size_bytes is not None else expected_size_bytes(archive, base)
    final = root / archive.filename
    show = progress and sys.stderr.isatty()
    if not final.is_file():
        part = final.with_name(final.name + ".part")
        url = base + archive.filename
        total = _download_with_retries(url, part, expected, timeout_s, retries, show)
        verify_archive(part, total if total is not None else expected, show)
        os.replace(part, final)  # only a verified archive gets the final name
    elif expected is not None and final.stat().st_size != expected:
        raise UserError(
            f"{final} has {final.stat().st_size} bytes but should have {expected}; "
            "delete it and rerun to download it again"
        )
    marker = {"version": archive.version, "test_set": archive.test_set}
    extract_archive(final, dataset, marker, show, lambda tmp: _check_clips(tmp, final))
    if not keep_archive:
        final.unlink()
    return dataset


def _check_clips(folder: Path, archive_path: Path, extracted: bool = False) -> None:
    """Refuse an extraction without a `<word>/*.wav` clip (say a mirror's HTML error page
    packed as the archive): training on it would fail later, far from the cause.

    Raises:
        UserError: naming the archive, what it held and the fix.
    """
    for entry in folder.iterdir():
        word = not entry.name.startswith(("_", ".")) or entry.name in (SILENCE_LABEL, UNKNOWN_LABEL)
        if word and entry.is_dir() and next(entry.glob("*.wav"), None) is not None:
            return
    found = other_entries(folder)
    held = f"only {found}" if found else "nothing"
    fix = (
        f"delete {folder} and {archive_path}"
        if extracted  # extracted by an earlier kws that did not check
        else f"delete {archive_path}"
    )
    raise UserError(
        f"{archive_path} holds no Speech Commands clips (word folders of .wav files), "
        f"{held}: it is not the GSC archive; {fix} and rerun to download it again, and check "
        f"the base URL (--base-url / {BASE_URL_ENV})"
    )


def _data_root(root: Path) -> Path:
    """`root`, created if missing.

    Raises:
        UserError: `root` is a file (or a parent is), or cannot be created.
    """
    if root.exists() and not root.is_dir():
        raise UserError(
            f"data root '{root}' (--root) is a file, not a folder; choose a folder (it is "
            "created if missing), e.g. --root data"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, a dangling link, no permission
        raise UserError(
            f"cannot create the data root '{root}' (--root): {exc.strerror or exc}; choose "
            "another folder"
        ) from None
    return root


def _download_with_retries(
    url: str, part: Path, expected: int | None, timeout_s: float, retries: int, show: bool
) -> int | None:
    """Bring `part` to the whole archive, resuming after drops; return the total size if known."""
    with progress_bar(show) as bar:
        task = bar.add_task(f"download {part.name.removesuffix('.part')}", total=expected)
        for attempt in range(retries + 1):
            try:
                return _fetch(url, part, expected, timeout_s, lambda n: bar.update(task, **n))
            except _Interrupted as exc:
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    kept = f"the partial file {part} ({have} bytes) is kept: " if have else ""
                    raise UserError(
                        f"download of {url} failed ({exc}); {kept}run the same command again to "
                        f"resume (check the network, or set {BASE_URL_ENV} / --base-url to a "
                        "reachable mirror)"
                    ) from None
                time.sleep(_RETRY_PAUSE_S * (attempt + 1))
    raise AssertionError("unreachable")


def _fetch(url: str, part: Path, expected: int | None, timeout_s: float, report) -> int | None:
    """One HTTP attempt: append to `part` from its current size (or restart when we must)."""
    offset = part.stat().st_size if part.exists() else 0
    if expected is not None and offset > expected:
        offset = 0  # bigger than the archive can be: not a prefix of it, start over
    if expected is not None and offset == expected:
        return expected  # complete already; verification decides whether it is sound
    response, offset, total = _open(url, offset, timeout_s)
    if response is None:
        return total  # 416 and our file already has the server's full size
    with response:
        if expected is not None and total is not None and total != expected:
            raise UserError(
                f"{url} is {total} bytes but the archive should be {expected}; the server sends "
                "a different file: check the version and the base URL"
            )
        _check_free_space(part.parent, (total or 0) - offset)
        report({"completed": offset, "total": total})
        # offset is 0 again when the server answered a Range request with the whole file
        with open(part, "r+b" if offset else "wb") as out:
            out.seek(offset)
            done = _copy(response, out, offset, report)
    if total is not None and done < total:
        raise _Interrupted(f"connection closed at {done} of {total} bytes")
    return total


def _open(url: str, offset: int, timeout_s: float):
    """GET `url` from byte `offset`; return (response | None, actual offset, total size | None)."""
    headers = {"User-Agent": "kws-gsc-downloader"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except HTTPError as exc:
        if exc.code == 416 and offset:
            total = _content_range(exc.headers.get("Content-Range", ""))[1]
            exc.close()
            return (None, offset, total) if total == offset else _open(url, 0, timeout_s)
        raise UserError(
            f"HTTP {exc.code} {exc.reason} for {url}; check the version and the base URL "
            f"(--base-url / {BASE_URL_ENV})"
        ) from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        raise _Interrupted(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    if response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range", ""))
        if start == offset:
            return response, offset, total
        response.close()  # the server resumed somewhere else: do not splice, start over
        return _open(url, 0, timeout_s)
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _content_range(header: str) -> tuple[int | None, int | None]:
    """Parse "bytes 5-9/10" or "bytes */10" into (start, total); None where absent."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", header or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _copy(response, out, done: int, report) -> int:
    """Stream the body into `out` chunk by chunk; a dropped connection is `_Interrupted`."""
    try:
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            done += len(chunk)
            report({"completed": done})
    except (OSError, http.client.HTTPException) as exc:
        out.flush()  # keep every byte received so far for the resume
        raise _Interrupted(f"connection lost at {done} bytes: {exc}") from None
    return done


def _check_free_space(folder: Path, needed_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise UserError(
            f"{folder} has {free / 1e9:.2f} GB free but the download needs "
            f"{needed_bytes / 1e9:.2f} GB more (and about as much again to extract); free space "
            "or choose another data root"
        )
