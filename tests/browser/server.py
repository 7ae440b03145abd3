"""The live server of the browser tests: the demo database built once, copied per server, and
served by uvicorn from a background thread; and where Debian's Chromium is.

The fixtures in ``conftest.py`` are the way to use these; the module exists so that a test can
import ``LiveServer`` for its annotations.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import uvicorn

from microloan.api.app import create_app
from microloan.service.demo import load_demo
from microloan.service.platform import Platform
from microloan.settings import Settings

CHROMIUM_ENV = "MICROLOAN_CHROMIUM"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
SERVER_START_TIMEOUT_S = 15.0
SERVER_STOP_TIMEOUT_S = 10.0
NO_LIMIT = "100000/minute"
DEMO_FILES = ("microloan.sqlite3", "population.parquet")

Now = Callable[[], datetime]


@dataclass(frozen=True)
class LiveServer:
    url: str  # "http://127.0.0.1:PORT", no trailing slash
    platform: Platform  # the server's own: read or prepare data through the service layer

    def url_for(self, path: str) -> str:
        assert path.startswith("/"), path
        return self.url + path


def settings_for(folder: Path) -> Settings:
    """Settings whose every file lies in ``folder`` (nothing is written into the checkout), with
    the rate limits raised: every page load of the tests comes from 127.0.0.1."""
    return Settings(
        database_url=f"sqlite:///{folder / DEMO_FILES[0]}",
        population_path=str(folder / DEMO_FILES[1]),
        data_key_file=str(folder / "data.key"),
        gateway_secrets_file=str(folder / "gateway-secrets.json"),
        rate_limit_public=NO_LIMIT,
        rate_limit_borrower=NO_LIMIT,
        rate_limit_operator=NO_LIMIT,
        rate_limit_operator_login=NO_LIMIT,
    )


def build_demo(folder: Path, now: Now) -> None:
    """The demo database and its population in ``folder``; ``folder/ready`` once complete."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings_for(folder)
    p = Platform.connect(settings.database_url, now=now, settings=settings)
    try:
        assert load_demo(p)["loaded"]
    finally:
        p.dispose()  # the last connection to close checkpoints the WAL into the file
    (folder / "ready").touch()


@contextmanager
def serving(p: Platform) -> Iterator[str]:
    """Serve ``create_app(p)`` from a background thread; the base URL while it runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held from here on: no race with other workers
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(p), log_level="warning", access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"live-server-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(SERVER_STOP_TIMEOUT_S)
            sock.close()
            pytest.fail(f"the live server on port {port} did not start", pytrace=False)
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_STOP_TIMEOUT_S)
        sock.close()
        assert not thread.is_alive(), "the live server did not stop"


@contextmanager
def demo_server(template: Path, folder: Path, now: Now) -> Iterator[LiveServer]:
    """A server on a copy of the demo database in ``template``, its files in ``folder``."""
    assert (template / "ready").exists(), template
    for name in DEMO_FILES:
        shutil.copyfile(template / name, folder / name)
    settings = settings_for(folder)
    p = Platform.connect(settings.database_url, now=now, settings=settings)
    try:
        with serving(p) as url:
            yield LiveServer(url, p)
    finally:
        p.dispose()


def find_chromium() -> str | None:
    """Debian's Chromium (or the one ``MICROLOAN_CHROMIUM`` names); ``None`` when absent."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return named
    found = shutil.which("chromium")
    if found:
        return found
    return str(DEFAULT_CHROMIUM) if DEFAULT_CHROMIUM.is_file() else None
