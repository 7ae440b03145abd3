"""The server under test: ``microloan serve --workers N --no-demo`` as a subprocess of the
benchmark, on a free local port, with the environment the benchmark gives it (database, data
key, gateway secrets, population, rate limits). Stopped with SIGTERM (uvicorn shuts its workers
down), SIGKILL if that takes too long."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

START_TIMEOUT_S = 180.0  # imports and N workers on a busy two-core machine take a while
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def microloan_command() -> list[str]:
    """The project's ``microloan`` next to this interpreter (the virtualenv's)."""
    script = Path(sys.executable).with_name("microloan")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from microloan.cli.app import main; main()"]


class Server:
    """``with Server(env, workers=2) as server:`` — serving once ``/healthz`` answers."""

    def __init__(
        self, env: dict[str, str], *, workers: int, port: int | None = None, log: Path
    ) -> None:
        self.port = port or free_port()
        self.workers = workers
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        command = [
            *microloan_command(),
            "serve",
            "--no-demo",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        t = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        self.start_s = round(time.perf_counter() - t, 2)
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.log}")
            if _answers(self.url):
                return  # the workers still starting are covered by the warm-up run
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s; see {self.log}")

    def pids(self) -> set[int]:
        """The server's process and its descendants (uvicorn's workers)."""
        if self.proc is None:
            return set()
        return descendants(self.proc.pid) | {self.proc.pid}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def env_for(settings: dict[str, Any]) -> dict[str, str]:
    """``MICROLOAN_*`` variables from settings names (``database_url`` → MICROLOAN_DATABASE_URL)."""
    return {f"MICROLOAN_{k.upper()}": str(v) for k, v in settings.items()}
