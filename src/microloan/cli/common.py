"""What every command shares: the console, the ``--database`` and ``--json`` options, the one-line
error translation and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from microloan.errors import InvalidInput, MicroloanError
from microloan.service.platform import Platform

console = Console()
err_console = Console(stderr=True)

Database = Annotated[
    str | None,
    typer.Option(
        "--database", help="Database URL (default: $MICROLOAN_DATABASE_URL or the SQLite file)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]

P = ParamSpec("P")
R = TypeVar("R")


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MicroloanError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig or exc).strip().splitlines()[0]
            err_console.print(
                f"error: db.unavailable: {first} (is the database initialised? "
                "run `microloan db init`)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=None if as_json else 2))
        sys.stdout.write("\n")
    else:
        human(data)


def platform(database: str | None, *, role: str | None = None) -> Platform:
    """The platform at ``--database`` (default: the configured one); ``role`` as in
    ``Platform.connect``."""
    return Platform.connect(database, role=role)


def positive_id(value: int, field: str) -> int:
    if value <= 0:
        raise InvalidInput("must be a positive id", field=field)
    return value
