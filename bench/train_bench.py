"""Scorecard training end to end on a synthetic labelled table.

Generates a seeded table (numeric and categorical characteristics with signal and missing
values, a 0/1 ``bad`` column), writes it to a temporary Parquet file, and times
``microloan.modeling.train.train`` on it — reading, binning, regression, scoring, report and
the imports of optbinning/scikit-learn/matplotlib included, as a first run of
``microloan model train`` would pay them. Prints one JSON object; target: 1,000,000 rows × 30
characteristics in under 300 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, source_info

TARGET_SECONDS = 300.0
TARGET_BAD_RATE = 0.1


def synthetic_table(rows: int, cols: int, seed: int) -> pl.DataFrame:
    """Two thirds numeric, one third categorical; each column carries some signal (decaying
    weights, some effects non-linear), 1–10 % missing values that carry their own effect."""
    rng = np.random.default_rng(seed)
    logit = np.zeros(rows)
    columns: list[pl.Series] = []
    for j in range(cols):
        weight = 0.8 / (1 + j) ** 0.5
        missing = rng.random(rows) < rng.uniform(0.01, 0.10)
        if j % 3 == 2:
            levels = int(rng.integers(4, 20))
            effects = rng.normal(0, 1, levels)
            codes = rng.integers(0, levels, rows)
            effect = effects[codes]
            name = f"x{j:02d}"
            labels = pl.Series(name, [f"c{j}_{k}" for k in range(levels)], pl.String)
            column = (
                labels.gather(codes)
                .to_frame()
                .select(pl.when(pl.Series(missing)).then(None).otherwise(pl.col(name)))
                .to_series()
                .alias(name)
            )
        else:
            x = rng.normal(0, 1, rows)
            effect = x if j % 2 == 0 else np.abs(x) - 0.8  # a U-shaped one every other column
            values = np.where(missing, np.nan, np.round(x * 10 + 50, 2))
            column = pl.Series(f"x{j:02d}", values, nan_to_null=True)
        logit += weight * np.where(missing, 0.5, effect)
        columns.append(column)
    logit -= np.quantile(logit, 1 - TARGET_BAD_RATE)
    bad = rng.random(rows) < 1 / (1 + np.exp(-(logit * 1.5 - 1.0)))
    return pl.DataFrame([*columns, pl.Series("bad", bad.astype(np.int8))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--workers", type=int, default=1, help="processes for the binning")
    ap.add_argument(
        "--keep", type=Path, default=None, help="write the outputs here, not a temp dir"
    )
    args = ap.parse_args()

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    frame = synthetic_table(args.rows, args.cols, args.seed)
    generate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        data = Path(tmp) / "synthetic.parquet"
        frame.write_parquet(data)
        bad_rate = float(frame["bad"].mean())  # type: ignore[arg-type]
        del frame
        out = args.keep or Path(tmp) / "model"
        stages: dict[str, float] = {}

        def progress(what: str, done: int, total: int) -> None:
            key = what.split(" ")[0] + " " + what.split(" ")[1] if " " in what else what
            stages.setdefault(key, time.perf_counter() - start)

        from microloan.modeling.train import TrainOptions, train

        start = time.perf_counter()
        result = train(
            data,
            target="bad",
            out_dir=out,
            trained_at=datetime.now(UTC),
            options=TrainOptions(workers=args.workers),
            progress=progress,
        )
        seconds = time.perf_counter() - start
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    report = result.report
    print(
        json.dumps(
            {
                "rows": args.rows,
                "cols": args.cols,
                "seconds": round(seconds, 2),
                "test_auc": round(report["metrics"]["test"]["auc"], 4),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "target_seconds": TARGET_SECONDS,
                "pass": seconds < TARGET_SECONDS,
                "workers": args.workers,
                "bad_rate": round(bad_rate, 4),
                "kept": len(result.scorecard.characteristics),
                "test_ks": round(report["metrics"]["test"]["ks"], 4),
                "psi": round(report["psi"]["value"], 5),
                "stage_start_s": {k: round(v, 2) for k, v in stages.items()},
                "generate_s": round(generate_s, 2),
                # Other work on the machine slows the run: compare with cpu_count.
                "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                "cpu_seconds": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_utime
                    + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                    1,
                ),
                "version": result.scorecard.version,
                "machine": machine_info(),
                "source": source_info(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
