"""``microloan population``: the seeded synthetic population the simulated providers read."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from microloan.cli.common import AsJson, console, emit, err_console, guarded
from microloan.errors import InvalidInput

population_app = typer.Typer(help="模拟人群 Synthetic population.", no_args_is_help=True)

T = TypeVar("T")
REFERENCE_DATE = "2026-11-23"
_TABLE_SUFFIXES = (".csv", ".parquet")


def _default_population() -> Path:
    from microloan.settings import Settings

    return Path(Settings().population_path)


def _date(text: str, field: str) -> date:
    from microloan.domain.calendar import parse_date

    return parse_date(text, field=field)


@population_app.command("generate")
@guarded
def generate_cmd(
    size: Annotated[int, typer.Option(help="People to draw (1–10,000,000).")],
    seed: Annotated[int, typer.Option(help="Seed (≥ 0): the same seed gives the same file.")],
    out: Annotated[
        Path | None, typer.Option(help="Parquet file (default: var/population.parquet).")
    ] = None,
    as_of: Annotated[
        str, typer.Option("--as-of", help="The simulated today, YYYY-MM-DD.")
    ] = REFERENCE_DATE,
    as_json: AsJson = False,
) -> None:
    """生成人群 Draw the synthetic population and write it to Parquet."""
    from microloan.sim import population

    population.check_size_and_seed(size, seed)
    on = _date(as_of, "as_of")
    path = out or _default_population()
    started = time.perf_counter()
    if as_json:
        frame = population.generate(size, seed, as_of=on)
        population.write(frame, path)
    else:
        with err_console.status("drawing people…") as status:
            frame = population.generate(
                size, seed, as_of=on, progress=lambda step: status.update(f"drawing {step}…")
            )
            status.update(f"writing {path}…")
            population.write(frame, path)
    result: dict[str, Any] = {
        "size": size,
        "seed": seed,
        "as_of": on.isoformat(),
        "path": str(path),
    }
    result |= population.summary(frame)
    result["seconds"] = round(time.perf_counter() - started, 2)
    emit(result, as_json, _print_generated)


def _print_generated(r: dict[str, Any]) -> None:
    console.print(
        f"人群 population: {r['size']:,} people (seed {r['seed']}) → {r['path']} "
        f"in {r['seconds']} s\n"
        f"坏账率 bad rate {r['bad_rate']:.2%} · 无征信记录 no credit record "
        f"{r['no_report_share']:.1%} · WeChat {r['wechat_users']:,} · QQ {r['qq_users']:,} · "
        f"devices shared by 3+ {r['devices_shared_by_3_or_more']:,} · blocked {r['blocked']:,}"
    )


@population_app.command("history")
@guarded
def history_cmd(
    out: Annotated[Path, typer.Option(help="Training table to write: .csv or .parquet.")],
    population_file: Annotated[
        Path | None,
        typer.Option("--population", help="Population file (default: var/population.parquet)."),
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(help="wechat | qq (default: each person's primary channel)."),
    ] = None,
    on: Annotated[
        str, typer.Option("--on", help="Reference date for ages, YYYY-MM-DD.")
    ] = REFERENCE_DATE,
    as_json: AsJson = False,
) -> None:
    """训练样本 Write the labelled training table: characteristics and the bad flag."""
    import polars as pl

    from microloan.providers.simulated import SimulatedWorld
    from microloan.sim.history import training_table
    from microloan.sim.signals import CHANNELS

    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(
            f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})", field="channel"
        )
    if out.suffix.lower() not in _TABLE_SUFFIXES:
        raise InvalidInput("must end in .csv or .parquet", field="out")
    reference = _date(on, "on")
    source = population_file or _default_population()
    quiet = as_json
    world = _with_status(f"loading {source}…", lambda: SimulatedWorld.load(source), quiet=quiet)
    started = time.perf_counter()
    table = _with_status(
        "computing characteristics…",
        lambda: training_table(world, channel=channel, on=reference),
        quiet=quiet,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.write_csv(out)
    else:
        table.write_parquet(out)
    result = {
        "path": str(out),
        "population": str(source),
        "channel": channel or "primary",
        "on": reference.isoformat(),
        "rows": table.height,
        "bad_rate": (
            round(float(table.select(pl.col("bad").cast(pl.Float64).mean()).item()), 4)
            if table.height
            else None
        ),
        "columns": table.columns,
        "seconds": round(time.perf_counter() - started, 2),
    }
    emit(result, as_json, _print_history)


def _with_status(message: str, work: Callable[[], T], *, quiet: bool) -> T:
    """Run ``work`` under a spinner on stderr (none with ``--json``: stdout stays pure JSON)."""
    if quiet:
        return work()
    with err_console.status(message):
        return work()


def _print_history(r: dict[str, Any]) -> None:
    rate = "n/a" if r["bad_rate"] is None else f"{r['bad_rate']:.2%}"
    console.print(
        f"训练样本 training table: {r['rows']:,} rows ({r['channel']} channel, ages on "
        f"{r['on']}) → {r['path']}\n坏账率 bad rate {rate} · "
        f"{len(r['columns']) - 1} characteristics: {', '.join(r['columns'][:-1])}"
    )
