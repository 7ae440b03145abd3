"""``microloan model``: train and evaluate scorecards.

The modelling code (polars, optbinning, scikit-learn, matplotlib) is imported inside the
commands: ``microloan --help`` and every other command stay quick.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from microloan.cli.common import AsJson, console, emit, err_console, guarded
from microloan.errors import InvalidInput

model_app = typer.Typer(help="评分卡模型 Scorecard models.", no_args_is_help=True)

DataFile = Annotated[
    Path, typer.Option("--data", help="Labelled table: .csv or .parquet, one row per applicant.")
]
Target = Annotated[
    str, typer.Option("--target", help="Target column: 0/1, or text with --bad-label.")
]
BadLabel = Annotated[
    str | None,
    typer.Option("--bad-label", help="Target value of the bad class; every other value is good."),
]


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A Rich progress bar on stderr (only on a terminal), fed by the training callback."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        yield update


@model_app.command("train")
@guarded
def train_cmd(
    data: DataFile,
    target: Target,
    out: Annotated[Path, typer.Option("--out", help="Folder for scorecard.json and the report.")],
    bad_label: BadLabel = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Channel the scorecard is for (default: all).")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Column to leave out (ids); repeat for more."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/test split.")] = 42,
    min_iv: Annotated[
        float, typer.Option("--min-iv", help="Keep characteristics with IV at least this.")
    ] = 0.02,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes binning characteristics in parallel.")
    ] = 1,
    as_json: AsJson = False,
) -> None:
    """训练 Train a scorecard: binning, WOE/IV, logistic regression, points; writes
    scorecard.json, report.json and report.html to --out."""
    from microloan.modeling.train import TrainOptions, train
    from microloan.service.clock import system_now

    options = TrainOptions(seed=seed, min_iv=min_iv, channel=channel, workers=workers)
    with _progress(not as_json) as progress:
        result = train(
            data,
            target=target,
            out_dir=out,
            trained_at=system_now(),
            bad_label=bad_label,
            exclude=tuple(exclude or ()),
            options=options,
            progress=progress,
        )
    r = result.report
    summary = {
        "version": result.scorecard.version,
        "channel": result.scorecard.channel,
        "out": str(out),
        "files": sorted(p.name for p in result.files.values()),
        "rows": r["rows"],
        "bad_rate": r["bad_rate"],
        "train": r["metrics"]["train"],
        "test": r["metrics"]["test"],
        "psi": r["psi"]["value"],
        "kept": [c["name"] for c in r["characteristics"] if c["kept"]],
        "dropped": {c["name"]: c["reason"] for c in r["characteristics"] if not c["kept"]},
    }
    emit(summary, as_json, _print_train)


def _print_train(s: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"评分卡 Scorecard [bold]{s['version']}[/bold] → {s['out']}")
    table = Table(title="验证 Validation")
    for col in ("", "行数 Rows", "坏账率 Bad rate", "AUC", "KS", "Gini"):
        table.add_column(col, justify="right")
    for name in ("train", "test"):
        m = s[name]
        table.add_row(
            name,
            str(s["rows"][name]),
            f"{s['bad_rate'][name]:.4f}",
            f"{m['auc']:.4f}",
            f"{m['ks']:.4f}",
            f"{m['gini']:.4f}",
        )
    console.print(table)
    console.print(f"PSI train→test {s['psi']:.4f}", highlight=False)
    console.print(f"保留特征 Kept ({len(s['kept'])}): {', '.join(s['kept'])}", highlight=False)
    if s["dropped"]:
        dropped = ", ".join(f"{n} ({why})" for n, why in s["dropped"].items())
        console.print(f"剔除 Dropped: {dropped}", highlight=False)


@model_app.command("evaluate")
@guarded
def evaluate_cmd(
    model: Annotated[
        Path, typer.Option("--model", help="Folder with scorecard.json (or the file itself).")
    ],
    data: DataFile,
    target: Target,
    bad_label: BadLabel = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="Write row, score and pd per row to this CSV.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """评估 Score every row with the serving scorecard and report AUC, KS, Gini and PSI."""
    from microloan.modeling.report import evaluate

    if scores is not None and (scores.is_dir() or not scores.parent.is_dir()):
        raise InvalidInput(
            f"cannot write {scores}: not a file in an existing folder", field="scores"
        )
    result = evaluate(model, data, target=target, bad_label=bad_label)
    if scores is not None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["row", "score", "pd"])
        for i, (s, p) in enumerate(zip(result.scores, result.pds, strict=True), start=1):
            writer.writerow([i, s, repr(p)])
        scores.write_text(buf.getvalue(), encoding="utf-8")
    summary = {**result.summary, "scores_file": str(scores) if scores else None}
    emit(summary, as_json, _print_evaluate)


def _print_evaluate(s: dict[str, Any]) -> None:
    console.print(
        f"评分卡 Scorecard [bold]{s['version']}[/bold]: {s['rows']} 行 rows, "
        f"坏账率 bad rate {s['bad_rate']:.4f}"
    )
    psi = "—" if s["psi"] is None else f"{s['psi']:.4f}"
    console.print(f"AUC {s['auc']:.4f} · KS {s['ks']:.4f} · Gini {s['gini']:.4f} · PSI {psi}")
    if s["missing_columns"]:
        console.print(f"缺列（按缺失计）Columns absent, scored as missing: {s['missing_columns']}")
    if s["scores_file"]:
        console.print(f"分数 Scores → {s['scores_file']}")
