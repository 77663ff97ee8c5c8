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


def _overrides_example(parser: argparse.ArgumentParser, verb: tuple[str, ...]) -> str | None:
    for name in verb:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    action = next((a for a in parser._actions if a.dest == "overrides"), None)
    return None if action is None else action.help.split("e.g. ", 1)[1]


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_overrides_are_explained_once_with_keys_the_verb_reads(verb, capsys):
    """Every verb printed the overrides text twice, with `train.epochs=5` as the example for
    evaluate, export and demo, which refuse it."""
    example = _overrides_example(build_parser(), verb)
    assert _exit_code([*verb, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    if example is None:
        assert "dotted config overrides" not in out
        return
    assert out.count("dotted config overrides") == 1
    from kws.config import load_recipe, unread_overrides
    from kws.export.run import EXPORT_READS
    from kws.train.report import EVALUATE_READS

    load_recipe(None, example.split())  # every key exists and every value is valid
    reads = {"evaluate": EVALUATE_READS, "export": EXPORT_READS, "demo": ("stream",),
             "stream-eval": ("stream",),
             "logit-adjust": ("data", "features", "train.num_threads")}  # fmt: skip
    if verb[-1] in reads:
        assert unread_overrides(example.split(), reads[verb[-1]]) == [], example
