"""Errors whose message names the problem and the fix; the CLI prints them without a traceback.

The ground floor of kws: it imports nothing from the package, so every stage can raise these.
"""

from __future__ import annotations

import importlib
import importlib.util


class UserError(RuntimeError):
    """Bad input from the user (file, option, environment) with a message saying how to fix it."""


class ConfigError(UserError, ValueError):
    """A recipe, override or config value that does not fit the schema; names key and value."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is missing; the message names the extra that provides it."""


def require(module: str, extra: str, package: str | None = None):
    """Import `module` or raise `MissingExtraError` naming `pip install 'kws[extra]'`.

    Raises:
        MissingExtraError: when the import fails.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"'{package or module}' is not installed ({exc}); install it with "
            f"pip install 'kws[{extra}]' (or make setup)"
        ) from None


def missing_modules(names) -> list[str]:
    """The names among `names` whose module cannot be found (found, not imported: cheap)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def require_modules(what: str, names, extra: str) -> None:
    """Raise `MissingExtraError` naming `pip install 'kws[extra]'` when `what` (e.g. "the kokoro
    engine") cannot run because one of the modules `names` is missing.

    Raises:
        MissingExtraError: naming the missing modules and the extra.
    """
    absent = missing_modules(names)
    if absent:
        raise MissingExtraError(
            f"{what} needs {', '.join(absent)}, which is not installed; install it with "
            f"pip install 'kws[{extra}]' (or make setup)"
        )


def require_all(modules: dict[str, tuple[str, str | None]]) -> None:
    """Check several optional imports up front: `{module: (extra, package name)}`.

    Used before slow work so a missing extra is reported first, not after minutes of decoding.

    Raises:
        MissingExtraError: naming every missing package and the extras that provide them.
    """
    missing = []
    for module, (extra, package) in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append((package or module, extra))
    if missing:
        names = ", ".join(name for name, _ in missing)
        extras = ",".join(sorted({extra for _, extra in missing}))
        raise MissingExtraError(
            f"{names} not installed; install with pip install 'kws[{extras}]' (or make setup)"
        )
