"""The access journey through the `microloan` command, as an operator runs it on SQLite: a
population, operators, the demo scorecard activated by maker-checker, a white-list batch,
onboarding from an ID-card photo, apply. Then the refusals, one line each, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from microloan.providers.simulated import SimulatedWorld
from microloan.service.demo_access import DEMO_MODEL
from microloan.sim.id_card import id_card_image

from .test_cli import TIMEOUT_S, _command

PASSWORD = "cli-passw0rd-42"


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.db = f"sqlite:///{tmp / 'access.sqlite3'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MICROLOAN_")}
        self.env |= {
            "COLUMNS": "200",
            "MICROLOAN_DATA_KEY": os.environ["MICROLOAN_DATA_KEY"],
            "MICROLOAN_POPULATION_PATH": str(tmp / "population.parquet"),
            "MICROLOAN_NEW_PASSWORD": PASSWORD,
            "MICROLOAN_OPERATOR_PASSWORD": PASSWORD,
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_command(), *args, "--database", self.db],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=TIMEOUT_S,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def refused(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 2, done.stdout
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
        return done.stderr


def test_invite_onboard_apply_through_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    subprocess.run(
        [*_command(), "population", "generate", "--size", "800", "--seed", "5", "--json"],
        env=cli.env,
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert cli.json("db", "init")["revision"] == "0005"
    cli.json("operator", "add", "--username", "maker", "--role", "risk_analyst")
    cli.json("operator", "add", "--username", "checker", "--role", "risk_analyst")
    version = cli.json("model", "register", "--model", str(DEMO_MODEL), "--operator", "maker")[
        "version"
    ]
    proposal = cli.json("model", "activate", version, "--operator", "maker")["proposal_id"]
    same = cli.refused("proposal", "approve", str(proposal), "--operator", "maker")
    assert "proposal.same_operator" in same
    assert cli.json("proposal", "approve", str(proposal), "--operator", "checker")["status"] == (
        "approved"
    )
    assert [m["status"] for m in cli.json("model", "list")] == ["active"]

    batch = cli.json("invite", "whitelist", "--channel", "wechat", "--seed", "3", "--quota", "20")
    assert batch["invited"] == 20
    invited = cli.json("invite", "list", "--channel", "wechat")
    open_ids = [i["open_id"] for i in invited["invitations"]]
    world = SimulatedWorld.load(tmp_path / "population.parquet")
    person = world.person_by_open_id("wechat", open_ids[0])
    assert person is not None
    photo = tmp_path / "id.png"
    photo.write_bytes(id_card_image(person))
    who = cli.json(
        "onboard", "identity", "--channel", "wechat", "--open-id", open_ids[0],
        "--id-card-image", str(photo), "--device", person.device_id,
    )  # fmt: skip
    cid = str(who["customer_id"])
    assert who["id_number"] == person.id_number[:4] + "*" * 10 + person.id_number[-4:]
    cli.json("onboard", "phone", "--customer", cid, "--phone", person.phone)
    cards = cli.json("onboard", "card-bind", "--customer", cid, "--card-number", person.card_number)
    assert cards["cards"][0]["default"] and person.card_number not in json.dumps(cards)

    refused = cli.refused("apply", "--customer", cid, "--channel", "wechat")
    assert "consent.credit_report.missing [consent]" in refused
    for kind in ("credit_report", "sensitive_pi", "loan_agreement"):
        cli.json("onboard", "consent", "--customer", cid, "--kind", kind)
    out = cli.json("apply", "--customer", cid, "--channel", "wechat")
    for key in ("approved", "limit", "daily_rate", "grade", "score", "pd", "reasons"):
        assert key in out
    assert out["model_version"] == version and out["outcome"] in ("approved", "declined")
    shown = cli.json("decision", "show", str(out["decision_id"]))
    assert sum(shown["record"]["points"].values()) == out["score"]
    if out["approved"]:  # a customer with a line does not apply again: re-scoring reviews it
        assert "line.exists" in cli.refused("apply", "--customer", cid, "--channel", "wechat")

    code = cli.json("invite", "code", "--channel", "wechat", "--open-id", open_ids[0])[
        "referral_code"
    ]
    check = cli.json("invite", "check", code)
    assert check["genuine"] and "免费" in check["message_zh"]
    assert not cli.json("invite", "check", "AAAA-BBBB-CCCC-DDDD")["genuine"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("apply", "--customer", "0", "--channel", "wechat"), "input.invalid [customer]"),
        (("apply", "--customer", "9", "--channel", "wechat"), "customer.not_verified [customer]"),
        (
            ("onboard", "identity", "--channel", "weibo", "--open-id", "x", "--name", "张三",
             "--id-number", "11010519491231002X"),
            "channel.unknown [channel]",
        ),
        (
            ("onboard", "identity", "--channel", "wechat", "--open-id", "x", "--name", "张三",
             "--id-number", "110105194912310021"),
            "identity.id_number.check_digit [id_number]",
        ),
        (("operator", "add", "--username", "ab", "--role", "risk_analyst"), "[username]"),
        (("operator", "add", "--username", "abc", "--role", "king"), "operator.role.unknown"),
        (("blocked", "add", "--kind", "dna", "--value", "x", "--reason", "r"), "[kind]"),
        (("model", "register", "--model", "/nonexistent", "--operator", "nobody"), "operator"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    cli = Cli(tmp_path)
    cli.json("db", "init")
    assert expected in cli.refused(*args)
