"""Errors whose message names the problem and the fix; the CLI prints them without a traceback."""

from __future__ import annotations


class UserError(RuntimeError):
    """Bad input from the user (file, option, environment) with a message saying how to fix it."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is missing; the message names the extra that provides it."""


def require(module: str, extra: str, package: str | None = None):
    """Import `module` or raise `MissingExtraError` naming `pip install 'kws[extra]'`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"'{package or module}' is not installed ({exc}); install it with "
            f"pip install 'kws[{extra}]' (or make setup)"
        ) from None
