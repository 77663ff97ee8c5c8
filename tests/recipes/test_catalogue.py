"""recipes/README.md's first table is the catalogue of recipes: every recipe YAML and every script
a user runs (a `__main__` block) under recipes/ must be named in it, so nothing ships unlisted."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


def _expand(pattern: str) -> list[str]:
    """`synth/bc_resnet_{1,2}.yaml` -> both names (shell brace expansion, as the table writes)."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in product(*choices)]


def catalogued() -> set[str]:
    """The names in the first cell of every row of the table headed `| recipe |`."""
    lines = (RECIPES / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| recipe |"))
    names = set()
    for line in lines[start + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break  # the table ends at its first non-row line
        first_cell = re.split(r"(?<!\\)\|", line)[1]  # `\|` is a pipe inside a cell
        match = re.match(r"\s*`([^` ]+)", first_cell)
        if match:
            names.update(_expand(match.group(1)))
    assert "quickstart.yaml" in names, "the catalogue table was not found or not parsed"
    return names


def shipped() -> set[str]:
    files = {p for p in RECIPES.rglob("*.yaml")}
    files |= {p for p in RECIPES.rglob("*.py") if 'if __name__ == "__main__"' in p.read_text()}
    return {str(p.relative_to(RECIPES)) for p in files}


def test_the_catalogue_names_every_recipe_and_script():
    missing = shipped() - catalogued()
    assert not missing, f"recipes/README.md's table does not list {sorted(missing)}"


def test_the_catalogue_names_nothing_that_does_not_exist():
    stale = catalogued() - shipped()
    assert not stale, f"recipes/README.md's table lists {sorted(stale)}, which do not exist"


def test_brace_expansion():
    assert _expand("gsc12/ds_cnn_{s,m,l}.yaml") == [
        "gsc12/ds_cnn_s.yaml", "gsc12/ds_cnn_m.yaml", "gsc12/ds_cnn_l.yaml",
    ]  # fmt: skip
    assert _expand("toy_rbf/run.py") == ["toy_rbf/run.py"]
