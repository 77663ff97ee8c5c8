"""`kws data download` through the CLI against a real HTTP server on 127.0.0.1
(tests/data/gsc_server.py): the README's commands run verbatim, --base-url, --test-set, and the
refusals a user sees (exit 2, nothing marked done). No external network."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kws.cli import main
from kws.data import download as dl
from kws.data.download import MARKER_NAME
from kws.data.gsc import LAYOUT_ARCHIVE, LAYOUT_TEST_SET
from tests.data.gsc_server import (
    ARCHIVE,
    GOOD,
    GOOD_TEST_SET,
    TEST_ARCHIVE,
    archive_of,
    assert_layout,
    assert_test_set,
)

README = Path(__file__).resolve().parents[2] / "README.md"


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
    assert_layout(tmp_path / "data" / "speech_commands_v0.02")
    assert_test_set(tmp_path / "data" / "speech_commands_test_set_v0.02")
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
    assert_test_set(folder) if test_set else assert_layout(folder)
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
    server.data = archive_of({"index.html": b"<html>Not the file</html>"})
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
