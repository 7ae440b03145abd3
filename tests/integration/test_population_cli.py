"""``microloan population`` as a user runs it: a subprocess per command, with ``--json``.

Each run starts a fresh interpreter (a second or more), so the happy path is one flow (generate,
generate again, history for the primary channels and for one channel) and each refusal runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from microloan.decisions.features import CHARACTERISTICS

CONSOLE_SCRIPT = Path(sys.executable).with_name("microloan")
TIMEOUT_S = 120
SIZE = 1500


def _command() -> list[str]:
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-c", "from microloan.cli.app import main; main()"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROLOAN_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=False,
    )


def cli_json(*args: str, cwd: Path) -> Any:
    done = cli(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def refused(*args: str, cwd: Path) -> str:
    """Run a command that must be refused: exit code 2, nothing on stdout, one line on stderr."""
    done = cli(*args, "--json", cwd=cwd)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_generate_then_history(tmp_path: Path) -> None:
    made = cli_json("population", "generate", "--size", str(SIZE), "--seed", "5", cwd=tmp_path)
    assert made["size"] == SIZE and made["seed"] == 5
    assert made["path"] == "var/population.parquet"  # the default, relative to where it runs
    assert 0 < made["bad_rate"] < 0.2 and made["devices_shared_by_3_or_more"] > 0
    first = tmp_path / "var" / "population.parquet"
    again = cli_json(
        "population", "generate", "--size", str(SIZE), "--seed", "5", "--out", "b.parquet",
        cwd=tmp_path,
    )  # fmt: skip
    assert again["bad_rate"] == made["bad_rate"]
    assert (tmp_path / "b.parquet").read_bytes() == first.read_bytes()

    table = cli_json("population", "history", "--out", "out/train.csv", cwd=tmp_path)
    assert table["rows"] == SIZE and table["channel"] == "primary"
    assert table["columns"] == [*CHARACTERISTICS, "bad"]
    csv = pl.read_csv(tmp_path / "out" / "train.csv")
    assert csv.columns == [*CHARACTERISTICS, "bad"]
    assert csv.height == SIZE and round(float(csv["bad"].mean() or 0), 4) == made["bad_rate"]

    qq = cli_json(
        "population", "history", "--population", "b.parquet", "--channel", "qq",
        "--out", "qq.parquet", cwd=tmp_path,
    )  # fmt: skip
    parquet = pl.read_parquet(tmp_path / "qq.parquet")
    assert 0 < qq["rows"] == parquet.height < SIZE
    assert parquet["app_active_days_90d"].null_count() == 0  # every row has QQ activity


def test_human_output_goes_to_stdout_and_the_spinner_stays_off_it(tmp_path: Path) -> None:
    done = cli("population", "generate", "--size", "200", "--seed", "1", "--out", "p.parquet",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "population" in done.stdout and "p.parquet" in done.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("generate", "--size", "0", "--seed", "1"), "[size]"),
        (("generate", "--size", "10", "--seed", "-1"), "[seed]"),
        (("history", "--population", "missing.parquet", "--out", "t.csv"), "[population]"),
        (("history", "--channel", "weibo", "--out", "t.csv"), "[channel]"),
        (("history", "--out", "t.xlsx"), "[out]"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    line = refused("population", *args, cwd=tmp_path)
    assert field in line, line
    assert not (tmp_path / "var").exists()
