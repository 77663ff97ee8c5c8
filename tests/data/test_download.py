"""The GSC downloader against a real HTTP server on 127.0.0.1 (tests/data/gsc_server.py): Range
requests, drops and resumes, corrupt and hostile archives, version names. The CLI and the
README's commands: test_download_cli.py. No external network."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from kws.data import download as dl
from kws.data.download import download_gsc, expected_size_bytes, gsc_archive, normalize_version
from kws.errors import UserError
from tests.data.gsc_server import (
    ARCHIVE,
    GOOD,
    TEST_ARCHIVE,
    GscServer,
    assert_layout,
    tar_gz,
    wav_bytes,
)


def _get(server: GscServer, root: Path, **kwargs) -> Path:
    return download_gsc("v0.02", root, base_url=server.url, progress=False, timeout_s=5, **kwargs)


def test_download_extract_layout_and_idempotence(server, tmp_path):
    dataset = _get(server, tmp_path / "data")
    assert dataset == tmp_path / "data" / "speech_commands_v0.02"
    assert_layout(dataset)
    assert (tmp_path / "data" / ARCHIVE).read_bytes() == GOOD
    assert not (tmp_path / "data" / (ARCHIVE + ".part")).exists()
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []
    assert len(server.requests) == 1 and server.requests[0]["range"] is None
    assert _get(server, tmp_path / "data") == dataset
    assert len(server.requests) == 1  # the second call touched no network


def test_env_var_base_url_and_archive_removal(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.BASE_URL_ENV, server.url.rstrip("/"))
    dataset = download_gsc("0.02", tmp_path, progress=False, timeout_s=5, keep_archive=False)
    assert_layout(dataset)
    assert not (tmp_path / ARCHIVE).exists()


def test_drop_then_resume_on_next_call(server, tmp_path):
    server.drop_after_bytes = [len(GOOD) // 3]
    with pytest.raises(UserError, match="run the same command again to resume"):
        _get(server, tmp_path, retries=0)
    part = tmp_path / (ARCHIVE + ".part")
    assert part.read_bytes() == GOOD[: len(GOOD) // 3]  # the partial file is kept
    assert_layout(_get(server, tmp_path))
    assert server.requests[-1]["range"] == f"bytes={len(GOOD) // 3}-"
    assert not part.exists()


def test_drop_is_resumed_automatically(server, tmp_path):
    server.drop_after_bytes = [1000, 5000]
    assert_layout(_get(server, tmp_path, retries=2))
    assert [r["range"] for r in server.requests] == [None, "bytes=1000-", "bytes=6000-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / (ARCHIVE + ".part")).write_bytes(b"\x00garbage that must not be kept" * 10)
    assert_layout(_get(server, tmp_path))
    assert server.requests[0]["range"] == "bytes=300-"
    assert (tmp_path / ARCHIVE).read_bytes() == GOOD


def test_partial_answer_from_another_offset_is_not_spliced(server, tmp_path):
    server.misplaced_range = True
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD[:700])
    assert_layout(_get(server, tmp_path))
    assert [r["range"] for r in server.requests] == ["bytes=700-", None]


def test_complete_part_answered_416_is_verified_without_body(server, tmp_path):
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD)
    assert_layout(_get(server, tmp_path))
    assert [r["range"] for r in server.requests] == [f"bytes={len(GOOD)}-"]


def test_part_longer_than_server_file_restarts(server, tmp_path):
    (tmp_path / (ARCHIVE + ".part")).write_bytes(GOOD + b"extra")
    assert_layout(_get(server, tmp_path))
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
    return tar_gz([(ok, wav_bytes(0)), (bad, data)]), bad.name


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
