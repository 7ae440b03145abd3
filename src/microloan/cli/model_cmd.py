"""``microloan model``: train and evaluate scorecards."""

from __future__ import annotations

import typer

model_app = typer.Typer(help="评分卡模型 Scorecard models.", no_args_is_help=True)
