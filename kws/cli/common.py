"""CLI helpers shared by the verbs: dotted overrides, and the few flags kept as config keys.

Every verb that reads a recipe or a run takes dotted overrides (`train.epochs=5`,
`stream.stride_ms=40`). The flags kept because they read better (`--threshold`, `--target`, ...)
are only spellings of config keys: `FLAG_KEYS` maps each to its key in one place, and
`flag_overrides` turns the flags a user gave into overrides placed before the user's own dotted
ones (so an explicit `key=value` wins).
"""

from __future__ import annotations

import argparse
import json

OVERRIDES_HELP = "dotted config overrides KEY=VALUE (values are YAML), e.g. {example}"

# flag destination -> config key it sets
FLAG_KEYS = {
    "data": "data.root",
    "device": "train.device",
    "target": "budget.target",
    "runtime": "budget.runtime",
    "formats": "export.formats",
    "max_drop": "export.max_int8_drop_points",
    "backend": "stream.backend",
    "threshold": "stream.detection_threshold",
}


def _yaml_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)  # JSON is YAML: quoting keeps paths with ':' or '#' intact


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides a verb's flags stand for, then the user's dotted overrides."""
    out = []
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest == "formats" and isinstance(value, str):
            value = [f.strip() for f in value.split(",") if f.strip()]
        out.append(f"{key}={_yaml_value(value)}")
    return out + list(getattr(args, "overrides", None) or [])


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """The positional `KEY=VALUE ...` every recipe- or run-reading verb takes; `example`: keys
    this verb reads."""
    help_text = OVERRIDES_HELP.format(example=example)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=help_text)


def verb_parser(sub, name: str, help_text: str, description: str, examples: list[str]):
    """A verb's parser with examples in its --help."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    # argparse %-formats a verb's one-line help in `kws --help` (not its description)
    return sub.add_parser(
        name, help=help_text.replace("%", "%%"), description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
