"""What every command shares: lazy extras and the one-line error contract."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import typer

from edge_agent.errors import VigilInputError

F = TypeVar("F", bound=Callable[..., Any])

# Top-level modules each extra brings; a missing one means the extra is absent.
_EXTRA_MODULES = {
    "train": ("tensorflow", "tf_keras", "sklearn", "matplotlib"),
    "edge": ("paho.mqtt",),
}


def fail(command: str, message: str, code: int = 2) -> None:
    """Print ``vigil <command>: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"vigil {command}: {message}", err=True)
    raise typer.Exit(code)


def load_extra(command: str, extra: str, module: str) -> ModuleType:
    """Import ``module``; if its extra is not installed, exit with a hint."""
    # Look the extra's packages up without importing them (tensorflow takes
    # seconds to import and prints C++ chatter when it does).
    for name in _EXTRA_MODULES.get(extra, ()):
        if _missing(name):
            fail(command, f"needs the {extra} extra: pip install 'vigil-edge[{extra}]'")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        needed = {m.split(".")[0] for m in _EXTRA_MODULES.get(extra, ())}
        if missing in needed or missing in {"tf_keras", "keras", "ai_edge_litert", "tflite_runtime"}:
            fail(command, f"needs the {extra} extra: pip install 'vigil-edge[{extra}]'")
        raise


def one_line_errors(command: str) -> Callable[[F], F]:
    """Turn a :class:`VigilInputError` into one line on stderr and exit 2."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except VigilInputError as exc:
                fail(command, str(exc), exc.exit_code)
            except KeyboardInterrupt:
                typer.echo(f"vigil {command}: interrupted", err=True)
                sys.exit(130)

        return wrapper  # type: ignore[return-value]

    return decorate


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package is missing
        return True


def add_group(app: typer.Typer, name: str, help_text: str, commands: dict[str, Callable[..., Any]]) -> None:
    """Add ``vigil NAME`` with its sub-commands (``vigil NAME COMMAND``) to the ``vigil`` app."""
    group = typer.Typer(name=name, help=help_text, no_args_is_help=True)
    for command, fn in commands.items():
        group.command(command)(fn)
    app.add_typer(group, name=name)
