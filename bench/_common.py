"""Helpers shared by the benchmark scripts: machine facts and latency percentiles."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def machine_info() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "executable": sys.executable,
    }


def source_info() -> dict[str, Any]:
    """The commit measured, and whether ``src/`` differed from it (figures depend on both)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "src_modified": None if status is None else bool(status),
    }


def percentile_ms(sorted_ms: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0–100) of an ascending list; None when it is empty."""
    if not sorted_ms:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return round(sorted_ms[rank - 1], 3)


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies_ms)
    return {
        "count": len(ordered),
        "latency_ms_p50": percentile_ms(ordered, 50),
        "latency_ms_p95": percentile_ms(ordered, 95),
        "latency_ms_p99": percentile_ms(ordered, 99),
        "latency_ms_max": round(ordered[-1], 3) if ordered else None,
        "latency_ms_mean": round(sum(ordered) / len(ordered), 3) if ordered else None,
    }
