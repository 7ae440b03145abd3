"""The demo a newcomer sees first: the book and the access journey, with rewards booked and the
ledger balanced."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from microloan.service.demo import load_demo
from microloan.service.ledger_check import check_ledger
from microloan.service.platform import Platform
from microloan.settings import Settings
from microloan.store.schema import decision, invitation, model_version, reward


def test_demo_loads_the_book_and_the_access_journey(platform: Platform, tmp_path: Path) -> None:
    platform.settings = Settings(population_path=str(tmp_path / "population.parquet"))
    out = load_demo(platform)
    assert out["loaded"]
    access = out["access"]
    assert access["invited"] == 40 and len(access["decisions"]) == 6
    assert any(d["approved"] for d in access["decisions"])
    held = access["review"]  # the console's review queue has a case to decide
    assert held is not None and held["decision"]["outcome"] == "review"
    assert "fraud.device.rooted" in held["decision"]["signals"]
    assert (tmp_path / "population.parquet").is_file()
    with platform.engine.connect() as conn:
        label, status = conn.execute(sa.select(model_version.c.label, model_version.c.status)).one()
        assert status == "active" and "synthetic population" in label and "模拟人群" in label
        assert conn.execute(sa.select(sa.func.count()).select_from(invitation)).scalar_one() >= 41
        assert conn.execute(sa.select(sa.func.count()).select_from(decision)).scalar_one() >= 7
        rewards = conn.execute(sa.select(reward.c.role)).scalars().all()
    if access["referral"] and access["referral"]["customer_id"]:
        assert sorted(rewards) == ["invitee", "inviter"]
    assert check_ledger(platform)["ok"]
    assert load_demo(platform) == {
        "loaded": False,
        "reason": "the database already holds customers",
    }
