"""Every `--help` the README sends users to prints and exits 0 (`verb_parser`: argparse
%-formats help text)."""

from __future__ import annotations

import argparse

import pytest

from kws.cli import build_parser, main


def _verb_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _verb_parsers(sub, (*prefix, name))


VERBS = list(_verb_parsers(build_parser()))


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_kws_alone_and_kws_help_list_every_verb(argv, capsys):
    code = main(argv) if argv == [] else _exit_code(argv)
    out = capsys.readouterr().out
    assert code == (2 if argv == [] else 0)
    for verb in ("data", "train", "evaluate", "grow", "profile", "export", "demo", "stream-eval"):
        assert f"    {verb}" in out
    assert "%%" not in out


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verbs_help_prints_its_examples(verb, capsys):
    assert _exit_code([*verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "%%" not in out and "usage: kws " + " ".join(verb) in out


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code
