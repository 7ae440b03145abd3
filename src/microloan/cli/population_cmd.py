"""``microloan population``: the seeded synthetic population the simulated providers read."""

from __future__ import annotations

import typer

population_app = typer.Typer(help="模拟人群 Synthetic population.", no_args_is_help=True)
