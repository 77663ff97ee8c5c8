"""Every `kws` command the docs and `--help` examples show parses as written, and the recipe
files it names exist: a renamed flag or recipe fails here, not in a user's terminal."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from kws.cli import build_parser, parse_args

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "recipes/README.md", "deploy/tflm/README.md", "data/README.md")  # fenced
SHELL_STOPS = {"|", "||", "&&", ";", "&"}


def _fenced_lines(text: str):
    """Lines inside ``` blocks, backslash continuations joined."""
    inside, pending = False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        yield pending
        pending = ""


def _kws_argv(line: str) -> list[str] | None:
    """The argv after `kws` (or `-m kws`) in a shell line, up to a pipe, `&&` or redirection."""
    tokens = shlex.split(line, comments=True)
    if "kws" not in tokens:
        return None
    argv = []
    for token in tokens[tokens.index("kws") + 1 :]:
        if token in SHELL_STOPS or re.match(r"^\d?>", token):
            break
        argv.append(token)
    return argv


def _documented() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in _fenced_lines((ROOT / doc).read_text()):
            if re.match(r"^\s*((\S+=\S+ )*kws |.*\| kws |torchrun .* -m kws )", line):
                found.append((doc, _kws_argv(line)))
    return found


def _help_examples(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, list[str]]]:
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            examples = (sub.epilog or "").split("\n\noverrides:")[0].splitlines()[1:]
            where = " ".join(("kws", *prefix, name, "--help"))
            found += [(where, _kws_argv(line)) for line in examples if "kws" in line.split()]
            found += _help_examples(sub, (*prefix, name))
    return found


def _top_level_examples() -> list[tuple[str, list[str]]]:
    lines = build_parser().epilog.splitlines()
    return [("kws --help", _kws_argv(line)) for line in lines if line.strip().startswith("kws ")]


COMMANDS = _documented() + _help_examples(build_parser()) + _top_level_examples()


def test_the_docs_show_commands_of_every_kind():
    """Guards the extraction itself: an empty list would pass every case below."""
    docs = {where for where, _ in COMMANDS}
    assert {"README.md", "recipes/README.md"} <= docs and len(COMMANDS) > 100
    verbs = {argv[0] for _, argv in COMMANDS}
    assert {"data", "train", "evaluate", "grow", "profile", "export", "demo"} <= verbs
    assert "kws --help" in docs


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[" ".join(a)[:80] for _, a in COMMANDS])
def test_documented_command_parses_and_its_recipe_exists(where, argv, capsys):
    if "--help" in argv:
        with pytest.raises(SystemExit) as help_exit:
            parse_args(build_parser(), argv)
        assert help_exit.value.code == 0, f"{where}: `kws {' '.join(argv)}`"
        return
    args = parse_args(build_parser(), argv)
    assert getattr(args, "run", None) is not None, f"{where}: `kws {' '.join(argv)}` runs nothing"
    for token in argv:
        recipe = re.match(r"^recipes/[\w./-]+\.(yaml|py)$", token)
        if recipe:
            assert (ROOT / token).is_file(), f"{where}: `kws {' '.join(argv)}` names {token}"
