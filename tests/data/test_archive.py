"""Extracting a verified archive (kws/data/archive.py): a member that cannot be written is a
`UserError` naming it, the archive and the fix, and leaves nothing behind. The archives are
built in memory and placed by hand, so no server is needed (placed archives skip the download,
not the checks)."""

from __future__ import annotations

import errno
import tarfile
from pathlib import Path

import pytest

from kws.cli import main
from kws.data import archive
from kws.data.download import download_gsc
from kws.errors import UserError
from tests.data.gsc_server import ARCHIVE, tar_gz, wav_bytes

CLIP = "./yes/0a7c2a8d_nohash_0.wav"


def _member(name: str, data: bytes | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, data


# a file and a folder both named ./yes, in either order: each member is safe on its own
FILE_AND_FOLDER = {
    "folder first": ([_member("./yes"), _member(CLIP, wav_bytes(0)), _member("./yes", b"x")],
                     "./yes", "EISDIR"),
    "file first": ([_member("./yes", b"x"), _member("./yes"), _member(CLIP, wav_bytes(0))],
                   CLIP, "ENOTDIR"),
}  # fmt: skip


@pytest.mark.parametrize("case", FILE_AND_FOLDER)
def test_a_member_that_cannot_be_written_is_a_user_error(tmp_path, case):
    """An archive holding a file and a folder of one name crashed with IsADirectoryError /
    NotADirectoryError from tarfile, and since the verified archive keeps its final name, every
    rerun crashed the same way."""
    members, name, code = FILE_AND_FOLDER[case]
    (tmp_path / ARCHIVE).write_bytes(tar_gz(members))
    for _ in range(2):  # a rerun says the same: the message is what gets the user out
        with pytest.raises(UserError) as caught:
            download_gsc("v0.02", tmp_path, base_url="http://127.0.0.1:9/", progress=False)
        message = str(caught.value)
        assert f"cannot extract member {name!r} of {tmp_path / ARCHIVE} ({code}" in message
        assert f"delete {tmp_path / ARCHIVE} and rerun to download it again" in message
        assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE]  # no temp folder left


def test_cli_reports_an_unwritable_member_without_traceback(tmp_path, capsys):
    members, _, _ = FILE_AND_FOLDER["file first"]
    (tmp_path / ARCHIVE).write_bytes(tar_gz(members))
    argv = ["data", "download", "--root", str(tmp_path), "--base-url", "http://127.0.0.1:9/"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot extract member '{CLIP}'" in err and "Traceback" not in err


def test_a_full_disk_says_to_free_space(tmp_path, monkeypatch):
    (tmp_path / ARCHIVE).write_bytes(tar_gz([_member("./yes"), _member(CLIP, wav_bytes(0))]))

    def full(self, tarinfo, targetpath):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "makefile", full)
    with pytest.raises(UserError, match=rf"member '{CLIP}' .*\(ENOSPC: .*free space in"):
        archive.extract_archive(tmp_path / ARCHIVE, tmp_path / "set", {}, show=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARCHIVE]


def test_extraction_sweeps_only_the_folders_of_killed_extractions(tmp_path):
    """Every stale-looking staging folder was removed unconditionally, so a second download
    into the same root removed a running one's folder; now only dead ones go (kws.io)."""
    import fcntl
    import os

    from kws.io import STAGING_OWNER_FILE

    def staging(name: str) -> Path:
        folder = tmp_path / f".set.{name}.extract"
        (folder / "yes").mkdir(parents=True)
        (folder / STAGING_OWNER_FILE).write_text("1\n")  # claimed by a run
        return folder

    dead, live = staging("deaddead"), staging("livelive")
    lock = os.open(live, os.O_RDONLY)  # held as a running extraction holds it
    fcntl.flock(lock, fcntl.LOCK_EX)
    (tmp_path / ARCHIVE).write_bytes(tar_gz([_member("./yes"), _member(CLIP, wav_bytes(0))]))
    try:
        archive.extract_archive(tmp_path / ARCHIVE, tmp_path / "set", {}, show=False)
    finally:
        os.close(lock)
    assert not dead.exists() and live.is_dir()
    assert (tmp_path / "set" / CLIP).is_file()
    assert not (tmp_path / "set" / STAGING_OWNER_FILE).exists()
