"""`kws profile` (kws.budget.report): flags that would change nothing are refused."""

from __future__ import annotations

from kws.cli import main


def test_targets_file_without_a_target_is_refused(tmp_path, capsys):
    """`kws profile --model ds_cnn_s --targets boards.yaml` printed the profile with no budget
    check, as if --targets had not been given."""
    boards = tmp_path / "boards.yaml"
    boards.write_text("targets:\n  myboard:\n    flash_bytes: 65536\n    sram_bytes: 16384\n")
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(boards)]) == 2
    err = capsys.readouterr().err
    assert f"--targets {boards} adds targets to check the model against, but no target" in err
