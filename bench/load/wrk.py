"""The load generator: wrk (a C program, so that the load costs the two-core machine little of
what the server needs) replaying raw HTTP requests that Python built beforehand.

Why pre-built: every borrower request is signed with a single-use nonce and a timestamp good
for ``MICROLOAN_GATEWAY_WINDOW_S`` (300 s), and money-moving ones carry their own
Idempotency-Key; building and signing them costs ~10 µs each in Python, before the timed run,
while wrk's Lua only hands out the next string. ``write_requests`` splits a list of requests
over wrk's threads (thread i gets requests i, i + T, …); ``run`` starts wrk with
``replay.lua`` and returns its JSON report; ``sent_prefix`` tells which requests went out.

wrk is not a Python package: install it with ``apt-get install -y wrk`` (Debian/Ubuntu) or from
https://github.com/wg/wrk. The benchmarks check for it and say so; they install nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "replay.lua"
INSTALL_HINT = "wrk is not installed: apt-get install -y wrk (or build https://github.com/wg/wrk)"
MARK = "REPLAY_JSON "


def require_wrk() -> str:
    """The path of wrk, or exit with how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


def wrk_version(path: str) -> str:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else ""


def write_requests(folder: Path, threads: int, requests: Sequence[bytes]) -> list[int]:
    """Write ``requests`` for ``threads`` wrk threads (round robin); the count each got."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = []
    for i in range(threads):
        mine = requests[i::threads]
        with (folder / f"requests.{i}").open("wb") as out:
            for raw in mine:
                out.write(b"%d\n" % len(raw))
                out.write(raw)
        counts.append(len(mine))
    return counts


def sent_prefix(report: dict[str, Any], threads: int, total: int) -> list[int]:
    """Indexes (into the list given to ``write_requests``) of the requests wrk sent."""
    out: list[int] = []
    for t in report["threads"]:
        i, sent = int(t["id"]), int(t["sent"])
        out.extend(range(i, total, threads)[:sent])
    return sorted(out)


def run(
    url: str,
    folder: Path,
    host: str,
    *,
    threads: int,
    connections: int,
    seconds: float,
    cycle: bool = False,
    pace_ms: float = 0.0,
    timeout_s: float = 10.0,
) -> tuple[dict[str, Any], int]:
    """Run wrk for ``seconds`` over the requests in ``folder``: its report and its pid. With
    ``pace_ms`` each connection waits that long before each request (an offered load of about
    connections × 1000 / (pace_ms + latency) requests a second; 0: as fast as answered)."""
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(folder),
        host,
        "cycle" if cycle else "once",
        f"{pace_ms:g}",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE
    )
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"wrk did not finish: {stderr[-2000:]}") from None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            report: dict[str, Any] = json.loads(line[len(MARK) :])
            report["wrk_summary"] = [x for x in stdout.splitlines() if not x.startswith(MARK)]
            return report, proc.pid
    raise RuntimeError(f"wrk gave no report (exit {proc.returncode}): {stderr[-2000:]}")


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Requests per second, latency percentiles (ms) and responses by status of one wrk run."""
    seconds = report["duration_us"] / 1e6
    statuses: dict[str, int] = {}
    samples: list[str] = []
    overflow = 0
    for t in report["threads"]:
        for status, n in t["statuses"].items():
            statuses[status] = statuses.get(status, 0) + int(n)
        samples.extend(t["error_samples"])
        overflow += int(t["overflow"])
    lat = report["latency_us"]
    errors = {k: v for k, v in report["errors"].items() if v and k != "status"}
    not_ok = {s: n for s, n in sorted(statuses.items()) if not 200 <= int(s) < 300}
    answered = sum(statuses.values()) - overflow
    return {
        "seconds": round(seconds, 2),
        "responses": answered,
        "requests_per_s": round(answered / seconds, 1) if seconds else None,
        "latency_ms_p50": round(lat["50"] / 1000, 2),
        "latency_ms_p90": round(lat["90"] / 1000, 2),
        "latency_ms_p99": round(lat["99"] / 1000, 2),
        "latency_ms_p999": round(lat["99.9"] / 1000, 2),
        "latency_ms_max": round(lat["max"] / 1000, 2),
        "latency_ms_mean": round(lat["mean"] / 1000, 2),
        "statuses": dict(sorted(statuses.items())),
        "errors": sum(not_ok.values()) + sum(errors.values()),
        "errors_by_status": not_ok,
        "socket_errors": errors,
        "error_samples": samples[:5],
        "exhausted": overflow > 0,
        "overflow_requests": overflow,
    }
