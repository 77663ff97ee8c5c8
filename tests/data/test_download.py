"""The GSC downloader against a real HTTP server on 127.0.0.1 (Range, drops, corrupt and hostile
archives), and the README's `kws data download` commands run verbatim through the CLI. No
external network."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import tarfile
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from kws.cli import main
from kws.data import download as dl
from kws.data.download import (
    MARKER_NAME,
    download_gsc,
    expected_size_bytes,
    gsc_archive,
    normalize_version,
)
from kws.data.gsc import LAYOUT_ARCHIVE, LAYOUT_TEST_SET, index_folder
from kws.errors import UserError

ARCHIVE = "speech_commands_v0.02.tar.gz"
TEST_ARCHIVE = "speech_commands_test_set_v0.02.tar.gz"
README = Path(__file__).resolve().parents[2] / "README.md"
CLIPS = ["yes/0a7c2a8d_nohash_0.wav", "yes/0b09edd3_nohash_1.wav", "no/0a7c2a8d_nohash_0.wav"]


def _wav_bytes(seed: int, samples: int = 16000) -> bytes:
    """Noise clips, so gzip cannot shrink the archive to nothing and drops land mid-stream."""
    audio = np.random.default_rng(seed).integers(-3000, 3000, samples, dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(audio.tobytes())
    return buffer.getvalue()


def _tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _archive_of(files: dict[str, bytes]) -> bytes:
    """A .tar.gz with "./" prefixes and folder entries, as the real archives have."""
    entries = []
    for folder in [".", *sorted({"./" + name.split("/")[0] for name in files if "/" in name})]:
        info = tarfile.TarInfo(folder)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        entries.append((info, None))
    entries += [(tarfile.TarInfo("./" + name), data) for name, data in files.items()]
    return _tar_gz(entries)


def _gsc_like_archive() -> bytes:
    """GSC layout: word folders, noise, split lists."""
    files = {clip: _wav_bytes(i) for i, clip in enumerate(CLIPS)}
    files["_background_noise_/white_noise.wav"] = _wav_bytes(9, 32000)
    files["validation_list.txt"] = b"yes/0b09edd3_nohash_1.wav\n"
    files["testing_list.txt"] = b"no/0a7c2a8d_nohash_0.wav\n"
    return _archive_of(files)


TEST_SET_CLIPS = {
    "yes/0c40e715_nohash_0.wav": "yes",
    "no/0c40e715_nohash_1.wav": "no",
    "_silence_/silence_0a1b2c3d_nohash_0.wav": "_silence_",
    "_unknown_/dog_0c40e715_nohash_0.wav": "_unknown_",
    "_unknown_/bed_1a2b3c4d_nohash_0.wav": "_unknown_",
}


def _test_set_archive() -> bytes:
    """The official test-set layout: label folders incl. _silence_/_unknown_, no lists."""
    files = {clip: _wav_bytes(20 + i, 4000) for i, clip in enumerate(TEST_SET_CLIPS)}
    files["LICENSE"] = b"CC BY 4.0\n"
    return _archive_of(files)


GOOD = _gsc_like_archive()
GOOD_TEST_SET = _test_set_archive()


class _Server:
    """ThreadingHTTPServer serving `data` at /<ARCHIVE>, with Range support and fault switches."""

    def __init__(self, data: bytes, others: dict[str, bytes] | None = None):
        self.data = data
        self.others = others or {}  # more files by name, served whole
        self.requests: list[dict] = []
        self.ignore_range = False
        self.misplaced_range = False  # answer 206 but from byte 0, as broken proxies do
        self.drop_after_bytes: list[int] = []  # per request, in order: send this much, then close
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                owner._serve(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        header = handler.headers.get("Range")
        self.requests.append({"path": handler.path, "range": header})
        name = handler.path.removeprefix("/")
        if name in self.others:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(self.others[name])))
            handler.end_headers()
            handler.wfile.write(self.others[name])
            return
        if name != ARCHIVE:
            handler.send_error(404)
            return
        size, start = len(self.data), 0
        if header and not self.ignore_range:
            start = 0 if self.misplaced_range else int(header.removeprefix("bytes=").split("-")[0])
            if start >= size:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(size - start))
        handler.end_headers()
        body = self.data[start:]
        if self.drop_after_bytes:
            body = body[: self.drop_after_bytes.pop(0)]
        handler.wfile.write(body)
        handler.close_connection = True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server(GOOD, {TEST_ARCHIVE: GOOD_TEST_SET})
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(dl, "_RETRY_PAUSE_S", 0.0)


def _get(server: _Server, root: Path, **kwargs) -> Path:
    return download_gsc("v0.02", root, base_url=server.url, progress=False, timeout_s=5, **kwargs)


def _assert_layout(dataset: Path) -> None:
    for clip in CLIPS:
        with wave.open(str(dataset / clip)) as handle:
            assert (handle.getframerate(), handle.getnframes()) == (16000, 16000)
    assert (dataset / "_background_noise_" / "white_noise.wav").is_file()
    assert (dataset / "validation_list.txt").read_text() == "yes/0b09edd3_nohash_1.wav\n"
    marker = json.loads((dataset / MARKER_NAME).read_text())
    assert marker["version"] == "v0.02" and marker["size_bytes"] == len(GOOD)
    assert marker["sha256"] == hashlib.sha256(GOOD).hexdigest()


def test_download_extract_layout_and_idempotence(server, tmp_path):
    dataset = _get(server, tmp_path / "data")
    assert dataset == tmp_path / "data" / "speech_commands_v0.02"
    _assert_layout(dataset)
    assert (tmp_path / "data" / ARCHIVE).read_bytes() == GOOD
    assert not (tmp_path / "data" / (ARCHIVE + ".part")).exists()
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []
    assert len(server.requests) == 1 and server.requests[0]["range"] is None
    assert _get(server, tmp_path / "data") == dataset
    assert len(server.requests) == 1  # the second call touched no network


def test_env_var_base_url_and_archive_removal(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.BASE_URL_ENV, server.url.rstrip("/"))
    dataset = download_gsc("0.02", tmp_path, progress=False, timeout_s=5, keep_archive=False)
    _assert_layout(dataset)
    assert not (tmp_path / ARCHIVE).exists()


def test_drop_then_resume_on_next_call(server, tmp_path):
    server.drop_after_bytes = [len(GOOD) // 3]
    with pytest.raises(UserError, match="run the same command again to resume"):
        _get(server, tmp_path, retries=0)
    part = tmp_path / (ARCHIVE + ".part")
    assert part.read_bytes() == GOOD[: len(GOOD) // 3]  # the partial file is kept
    _assert_layout(_get(server, tmp_path))
    assert server.requests[-1]["range"] == f"bytes={len(GOOD) // 3}-"
    assert not part.exists()


def test_drop_is_resumed_automatically(server, tmp_path):
    server.drop_after_bytes = [1000, 5000]
    _assert_layout(_get(server, tmp_path, retries=2))
    assert [r["range"] for r in server.requests] == [None, "bytes=1000-", "bytes=6000-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / (ARCHIVE + ".part")).write_bytes(b"\x00garbage that must not be kept" * 10)
    _assert_layout(_get(server, tmp_path))
    assert server.requests[0]["range"] == "bytes=300-"
    assert (tmp_path / ARCHIVE).read_bytes() == GOOD


def test_partial_answer_from_another_offset_is_not_spliced(server, tmp_path):
    server.misplaced_range = True
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD[:700])
    _assert_layout(_get(server, tmp_path))
    assert [r["range"] for r in server.requests] == ["bytes=700-", None]


def test_complete_part_answered_416_is_verified_without_body(server, tmp_path):
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD)
    _assert_layout(_get(server, tmp_path))
    assert [r["range"] for r in server.requests] == [f"bytes={len(GOOD)}-"]


def test_part_longer_than_server_file_restarts(server, tmp_path):
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD + b"extra")
    _assert_layout(_get(server, tmp_path))
    assert [r["range"] for r in server.requests] == [f"bytes={len(GOOD) + 5}-", None]


def test_corrupt_archive_is_refused_and_part_kept(server, tmp_path):
    corrupt = bytearray(GOOD)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.data = bytes(corrupt)
    with pytest.raises(UserError, match="is corrupt .*delete it and rerun"):
        _get(server, tmp_path)
    assert (tmp_path / (ARCHIVE + ".part")).read_bytes() == bytes(corrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE + ".part"]


def test_size_differing_from_expected_is_refused(server, tmp_path):
    with pytest.raises(UserError, match=f"is {len(GOOD)} bytes but the archive should be 12345"):
        _get(server, tmp_path, size_bytes=12345)
    assert not (tmp_path / (ARCHIVE + ".part")).exists()


def _hostile(kind: str, outside: Path) -> tuple[bytes, str]:
    ok = tarfile.TarInfo("./yes/fine_nohash_0.wav")
    bad = tarfile.TarInfo(
        {"dotdot": "../evil.txt", "absolute": str(outside / "abs.txt")}.get(kind, "yes/x")
    )
    data: bytes | None = b"pwned"
    if kind in ("symlink", "hardlink"):
        bad.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        bad.linkname, data = str(outside / "target.txt"), None
    elif kind == "device":
        bad.type, data = tarfile.CHRTYPE, None
    return _tar_gz([(ok, _wav_bytes(0)), (bad, data)]), bad.name


REASONS = {
    "dotdot": "climbs out",
    "absolute": "has an absolute path",
    "symlink": "is a symbolic link",
    "hardlink": "is a hard link",
    "device": "is a device",
}


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
@pytest.mark.parametrize("how", ["served", "placed"])
def test_hostile_archives_are_refused(server, tmp_path, kind, how):
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    server.data, member = _hostile(kind, outside)
    if how == "placed":  # an archive copied in by hand skips the download, not the checks
        (root / ARCHIVE).write_bytes(server.data)
    with pytest.raises(UserError, match=f"unsafe archive member '{member}': it {REASONS[kind]}"):
        _get(server, root)
    assert list(outside.iterdir()) == [] and not (tmp_path / "evil.txt").exists()
    assert not (root / "speech_commands_v0.02").exists()
    assert not any(p.name.startswith(".speech_commands") for p in root.iterdir())
    assert (root / ARCHIVE).exists() == (how == "placed")


def test_version_spellings():
    for name in ("v2", "2", "V2", "v0.02", "0.02", " v0.02 "):
        assert normalize_version(name) == "v0.02"
    for name in ("v1", "1", "v0.01", "0.01"):
        assert normalize_version(name) == "v0.01"
    assert gsc_archive("v2", test_set=True).filename == TEST_ARCHIVE
    with pytest.raises(UserError, match=r"'v3'; choose one of v0.01, v0.02, .*v2 \(= v0.02\)"):
        normalize_version("v3")


def test_unknown_version_and_bad_base_url(tmp_path):
    with pytest.raises(UserError, match="unknown Speech Commands version 'v0.03'.*v0.01, v0.02"):
        download_gsc("v0.03", tmp_path, progress=False)
    with pytest.raises(UserError, match="is not http"):
        download_gsc("v0.02", tmp_path, base_url="ftp://example.org/", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server_names_http_status(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download_gsc("v0.01", tmp_path, base_url=server.url, progress=False, timeout_s=5)


def test_foreign_folder_is_not_overwritten(server, tmp_path):
    (tmp_path / "speech_commands_v0.02").mkdir()
    with pytest.raises(UserError, match="no .kws-complete marker"):
        _get(server, tmp_path)
    assert server.requests == []


def test_archive_names_and_published_sizes():
    full, test = gsc_archive("v0.02"), gsc_archive("v0.02", test_set=True)
    assert (full.filename, full.folder) == ("speech_commands_v0.02.tar.gz", "speech_commands_v0.02")
    assert test.filename == "speech_commands_test_set_v0.02.tar.gz"
    assert expected_size_bytes(full, dl.DEFAULT_BASE_URL) == 2_428_923_189
    assert expected_size_bytes(test, dl.MIRROR_BASE_URL) == 112_563_277
    assert expected_size_bytes(full, "http://127.0.0.1:8000/") is None  # a mirror's own size
    assert expected_size_bytes(gsc_archive("v0.01"), dl.DEFAULT_BASE_URL) is None


def _readme_download_commands() -> list[list[str]]:
    """Every `kws data download ...` command in README.md, split as a shell would."""
    commands = []
    for line in README.read_text().splitlines():
        if "kws data download" not in line:
            continue
        for part in re.split(r"&&|;", line.split("#")[0]):
            words = shlex.split(part)
            if words[:3] == ["kws", "data", "download"]:
                commands.append(words[1:])
    return commands


def _assert_test_set(dataset: Path) -> None:
    index = index_folder(dataset)
    assert index.layout == LAYOUT_TEST_SET
    got = {f"{c.word}/{c.path.name}": (c.word, c.split) for c in index.clips}
    assert got == {clip: (label, "testing") for clip, label in TEST_SET_CLIPS.items()}


def test_readme_commands_run_verbatim(server, tmp_path, monkeypatch, capsys):
    """README's download commands as written (the host comes from $KWS_GSC_BASE_URL)."""
    commands = _readme_download_commands()
    full = ["data", "download", "--version", "v2", "--root", "data"]
    assert full in commands and [*full[:4], "--test-set", *full[4:]] in commands
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(dl.BASE_URL_ENV, server.url)
    for argv in commands:
        assert main(argv) == 0, argv
    out = capsys.readouterr().out
    assert f"dataset ready: data/speech_commands_v0.02 (layout {LAYOUT_ARCHIVE}" in out
    assert f"(layout {LAYOUT_TEST_SET}; use it with kws evaluate RUN --data" in out
    _assert_layout(tmp_path / "data" / "speech_commands_v0.02")
    _assert_test_set(tmp_path / "data" / "speech_commands_test_set_v0.02")
    requests = len(server.requests)
    for argv in commands:  # a rerun is a no-op: no network, nothing extracted again
        assert main(argv) == 0
    assert len(server.requests) == requests


@pytest.mark.parametrize("test_set", [False, True])
def test_cli_download_with_base_url_end_to_end(server, tmp_path, capsys, test_set):
    root = tmp_path / "data"
    argv = ["data", "download", "--version", "v2", "--root", str(root), "--base-url", server.url]
    argv += ["--test-set"] if test_set else []
    assert main(argv) == 0
    folder = root / ("speech_commands_test_set_v0.02" if test_set else "speech_commands_v0.02")
    assert f"dataset ready: {folder}" in capsys.readouterr().out
    _assert_test_set(folder) if test_set else _assert_layout(folder)
    assert (root / (TEST_ARCHIVE if test_set else ARCHIVE)).read_bytes() == (
        GOOD_TEST_SET if test_set else GOOD
    )
    assert main(argv) == 0 and len(server.requests) == 1  # rerun: a no-op


def test_cli_download_failure_exits_nonzero(server, tmp_path, capsys):
    argv = ["data", "download", "--version", "v1", "--root", str(tmp_path), "--base-url"]
    assert main([*argv, server.url]) == 2  # v0.01 is not on this server
    assert "HTTP 404" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("root", ["taken", "taken/data"])
def test_a_root_that_is_a_file_is_refused(tmp_path, capsys, root):
    """`--root FILE` crashed with FileExistsError from mkdir; FILE/data with NotADirectoryError."""
    (tmp_path / "taken").write_text("mine")
    argv = ["data", "download", "--root", str(tmp_path / root), "--base-url", "http://127.0.0.1:9/"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    said = {"taken": "(--root) is a file, not a folder", "taken/data": "(--root): Not a dir"}
    assert f"data root '{tmp_path / root}' {said[root]}" in err
    assert "Traceback" not in err and (tmp_path / "taken").read_text() == "mine"


def test_an_archive_without_clips_is_refused(server, tmp_path, capsys):
    """An archive holding only index.html said "dataset ready" and exited 0."""
    server.data = _archive_of({"index.html": b"<html>Not the file</html>"})
    argv = ["data", "download", "--root", str(tmp_path), "--base-url", server.url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / ARCHIVE} holds no Speech Commands clips (word folders of .wav " in err
    assert f"only index.html: it is not the GSC archive; delete {tmp_path / ARCHIVE} and" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE]  # nothing marked done
    done = tmp_path / "speech_commands_v0.02"  # extracted by a kws that did not check
    (done / "yes").mkdir(parents=True)
    (done / MARKER_NAME).write_text("{}")
    assert main(argv) == 2
    assert f"delete {done} and {tmp_path / ARCHIVE} and rerun" in capsys.readouterr().err
