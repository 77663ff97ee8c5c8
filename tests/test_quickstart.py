"""`kws quickstart` reruns keep an export of the current model (it re-exported every time, and
replaced an export the user had made) and make a new one when the model changed."""

from __future__ import annotations

import hashlib
import json

import pytest

from kws import quickstart
from kws.run import Run


def _run_with_export(tmp_path, exported_bytes: bytes, passed: bool = True) -> Run:
    run = Run(tmp_path / "run")
    run.best_path.parent.mkdir(parents=True)
    run.best_path.write_bytes(b"model A")
    run.export_dir.mkdir()
    made_from = {"path": str(run.best_path), "sha256": hashlib.sha256(exported_bytes).hexdigest()}
    (run.export_dir / "manifest.json").write_text(json.dumps({"checkpoint": made_from}))
    failures = [] if passed else ["int8 drop 3.0 points > 1.0"]
    (run.export_dir / "report.json").write_text(
        json.dumps({"passed": passed, "failures": failures})
    )
    return run


def test_an_export_of_the_current_model_is_kept(tmp_path, monkeypatch, capsys):
    run = _run_with_export(tmp_path, b"model A")

    def no_export(*args, **kwargs):
        raise AssertionError("re-exported a current export")

    monkeypatch.setattr(quickstart, "export_run", no_export)
    assert quickstart.current_export(run)["passed"] is True
    assert quickstart._export(run) == 0
    assert "kept the export" in capsys.readouterr().out


def test_a_kept_export_that_failed_its_gates_still_fails_the_quickstart(tmp_path):
    run = _run_with_export(tmp_path, b"model A", passed=False)
    assert quickstart._export(run) == 1


@pytest.mark.parametrize("exported", [b"model B", None], ids=["other model", "no record"])
def test_an_export_of_another_or_unknown_model_is_made_again(tmp_path, monkeypatch, exported):
    run = _run_with_export(tmp_path, exported or b"")
    if exported is None:  # an export older than the manifest's checkpoint record
        (run.export_dir / "manifest.json").write_text("{}")
    called = []

    def fake_export(path, force=False):
        called.append((path, force))
        raise RuntimeError("stop here")

    monkeypatch.setattr(quickstart, "export_run", fake_export)
    assert quickstart.current_export(run) is None
    with pytest.raises(RuntimeError, match="stop here"):
        quickstart._export(run)
    assert called == [(run.root, True)]
