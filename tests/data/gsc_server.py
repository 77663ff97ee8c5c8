"""A real HTTP server on 127.0.0.1 serving GSC-shaped archives (Range requests, drops, broken
proxies) and the checks of what a download leaves behind, for tests/data/test_download*.py.
Fixtures that start it live in tests/data/conftest.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from kws.data.download import MARKER_NAME
from kws.data.gsc import LAYOUT_TEST_SET, index_folder

ARCHIVE = "speech_commands_v0.02.tar.gz"
TEST_ARCHIVE = "speech_commands_test_set_v0.02.tar.gz"
CLIPS = ["yes/0a7c2a8d_nohash_0.wav", "yes/0b09edd3_nohash_1.wav", "no/0a7c2a8d_nohash_0.wav"]


def wav_bytes(seed: int, samples: int = 16000) -> bytes:
    """Noise clips, so gzip cannot shrink the archive to nothing and drops land mid-stream."""
    audio = np.random.default_rng(seed).integers(-3000, 3000, samples, dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(audio.tobytes())
    return buffer.getvalue()


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def archive_of(files: dict[str, bytes]) -> bytes:
    """A .tar.gz with "./" prefixes and folder entries, as the real archives have."""
    entries = []
    for folder in [".", *sorted({"./" + name.split("/")[0] for name in files if "/" in name})]:
        info = tarfile.TarInfo(folder)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        entries.append((info, None))
    entries += [(tarfile.TarInfo("./" + name), data) for name, data in files.items()]
    return tar_gz(entries)


def _gsc_like_archive() -> bytes:
    """GSC layout: word folders, noise, split lists."""
    files = {clip: wav_bytes(i) for i, clip in enumerate(CLIPS)}
    files["_background_noise_/white_noise.wav"] = wav_bytes(9, 32000)
    files["validation_list.txt"] = b"yes/0b09edd3_nohash_1.wav\n"
    files["testing_list.txt"] = b"no/0a7c2a8d_nohash_0.wav\n"
    return archive_of(files)


TEST_SET_CLIPS = {
    "yes/0c40e715_nohash_0.wav": "yes",
    "no/0c40e715_nohash_1.wav": "no",
    "_silence_/silence_0a1b2c3d_nohash_0.wav": "_silence_",
    "_unknown_/dog_0c40e715_nohash_0.wav": "_unknown_",
    "_unknown_/bed_1a2b3c4d_nohash_0.wav": "_unknown_",
}


def _test_set_archive() -> bytes:
    """The official test-set layout: label folders incl. _silence_/_unknown_, no lists."""
    files = {clip: wav_bytes(20 + i, 4000) for i, clip in enumerate(TEST_SET_CLIPS)}
    files["LICENSE"] = b"CC BY 4.0\n"
    return archive_of(files)


GOOD = _gsc_like_archive()
GOOD_TEST_SET = _test_set_archive()


class GscServer:
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


def assert_layout(dataset: Path) -> None:
    for clip in CLIPS:
        with wave.open(str(dataset / clip)) as handle:
            assert (handle.getframerate(), handle.getnframes()) == (16000, 16000)
    assert (dataset / "_background_noise_" / "white_noise.wav").is_file()
    assert (dataset / "validation_list.txt").read_text() == "yes/0b09edd3_nohash_1.wav\n"
    marker = json.loads((dataset / MARKER_NAME).read_text())
    assert marker["version"] == "v0.02" and marker["size_bytes"] == len(GOOD)
    assert marker["sha256"] == hashlib.sha256(GOOD).hexdigest()


def assert_test_set(dataset: Path) -> None:
    index = index_folder(dataset)
    assert index.layout == LAYOUT_TEST_SET
    got = {f"{c.word}/{c.path.name}": (c.word, c.split) for c in index.clips}
    assert got == {clip: (label, "testing") for clip, label in TEST_SET_CLIPS.items()}
