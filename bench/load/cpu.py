"""CPU seconds by process group, read from /proc: the server (its process and workers), the
load generator, the PostgreSQL backends serving the bench database, other PostgreSQL processes
(WAL writer, checkpointer, other databases) and everything else on the machine. The last one
says how much of the machine other work took: figures taken while it is above a few per cent
are not the code's alone."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GROUPS = ("server", "load_generator", "postgres_backends", "postgres_other", "other")


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy since boot."""
    times = cpu_times()
    return None if times is None else times[0] / os.sysconf("SC_CLK_TCK")


def by_group(named: dict[str, set[int]], db_name: str | None) -> dict[str, float]:
    """CPU seconds used so far by each named group of processes, the PostgreSQL backends
    serving ``db_name``, other PostgreSQL processes and everything else, and the machine's busy
    seconds (``machine_busy``). Processes that exited are no longer counted, so a group can
    even go down."""
    tick = os.sysconf("SC_CLK_TCK")
    out = dict.fromkeys([*named, "postgres_backends", "postgres_other", "other"], 0.0)
    ours = f" {db_name} " if db_name else None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(entry.name)
        group = next((name for name, pids in named.items() if pid in pids), None)
        if group is None:
            if ours and cmd.startswith("postgres: ") and ours in cmd:
                group = "postgres_backends"
            elif cmd.startswith("postgres: ") or "postgres" in cmd.split(" ")[0]:
                group = "postgres_other"
            else:
                group = "other"
        out[group] += (int(stat[11]) + int(stat[12])) / tick
    busy = machine_busy_s()
    if busy is not None:
        out["machine_busy"] = busy
    return out


def sample(server: set[int], load: set[int], db_name: str | None) -> dict[str, float]:
    """CPU seconds used so far by each of GROUPS (and ``machine_busy``)."""
    return by_group({"server": server, "load_generator": load}, db_name)


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have exited and been waited for: wrk's,
    once it is done (it is gone from /proc by then)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU use by group between ``start()`` and ``stop()``. The load generator (wrk, a child
    of this process that exits at the end of its run) is measured through ``children_cpu_s``;
    ``server()`` is asked for the server's processes at both ends."""

    def __init__(self, server: Callable[[], set[int]], db_name: str | None) -> None:
        self.server, self.db_name = server, db_name
        self.first: dict[str, float] | None = None
        self.children_s = 0.0

    def start(self) -> None:
        self.first = sample(self.server(), set(), self.db_name)
        self.children_s = children_cpu_s()

    def stop(self, wall_s: float, responses: int) -> dict[str, Any]:
        """After the load generator has exited: the CPU each group used, per response too."""
        assert self.first is not None
        last = sample(self.server(), set(), self.db_name)
        last["load_generator"] = self.first["load_generator"] + children_cpu_s() - self.children_s
        used = {k: round(last[k] - self.first[k], 2) for k in self.first if k in last}
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {
            "cpu_s": used,
            "cpu_ms_per_request": {
                k: round(1000 * v / responses, 3)
                for k, v in used.items()
                if k != "machine_busy" and responses
            },
            "machine_busy_fraction": round(used.get("machine_busy", 0) / (cores * wall_s), 3)
            if wall_s
            else None,
        }
        if "machine_busy" in used and wall_s > 0:
            bench = sum(used[k] for k in ("server", "load_generator", "postgres_backends"))
            foreign = max(0.0, used["machine_busy"] - bench - used["postgres_other"])
            out["not_bench_cpu_fraction"] = round(foreign / (cores * wall_s), 3)
        return out


def python_speed_ms(iterations: int = 2_000_000) -> float:
    """Milliseconds of CPU for a fixed pure-Python loop, best of three: how fast this machine
    runs Python right now (a busy or throttled machine reads higher). Compare runs by it."""
    best = math.inf
    for _ in range(3):
        t = time.process_time()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.process_time() - t)
    return round(best * 1000, 1)
