"""Invitations on both databases: channels, white-list batches, signed codes, share invitations,
rewards booked exactly once, and the `microloan invite` commands."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from microloan.access import referral_codes
from microloan.access import referrals as R
from microloan.access import whitelist as W
from microloan.access.crypto import Vault
from microloan.access.identity import id_check_char
from microloan.cli.invite_cmd import invite_app
from microloan.domain.books import Account
from microloan.domain.rates import DailyRate
from microloan.errors import InvalidInput, MicroloanError, RuleViolation
from microloan.service import invitations as inv
from microloan.service import lending
from microloan.service.invitations import Candidate
from microloan.service.platform import Platform
from microloan.settings import Settings
from microloan.store.schema import (
    bank_card,
    blocked_list,
    channel_identity,
    credit_line,
    customer,
    decision,
    identity,
    invitation,
    referral,
    reward,
)

from .support import (
    MakePlatform,
    account_balances,
    assert_ledger_ok,
    draw,
    refusal,
    row_counts,
    set_date,
)

START = date(2026, 1, 31)
T0 = datetime.fromisoformat("2026-01-31T01:00:00+00:00")


class Ticking:
    """A wall clock one second further at every reading: created_at orders like real life."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.now = Ticking(T0)
    set_date(platform, START)
    return platform


# ---------------------------------------------------------------------------------------------
# Helpers: candidates, customers, identities, cards


def good(open_id: str, *, device: str | None = None, **figures: int) -> Candidate:
    values = {"months_active": 12, "active_days_90": 45, "payments_90d": 20, **figures}
    return Candidate(open_id=open_id, device_id=device, **values)


def people(n: int, prefix: str = "u") -> list[Candidate]:
    return [good(f"{prefix}{i:04d}") for i in range(n)]


def invited_ids(p: Platform, channel: str = "wechat", *, status: str = "live") -> set[str]:
    with p.engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(invitation.c.open_id).where(
                    invitation.c.channel == channel, invitation.c.status == status
                )
            ).scalars()
        )


def forge(code: str) -> str:
    """The code with its first character changed: another body under the same signature."""
    return ("1" if code[0] != "1" else "2") + code[1:]


def id_number(n: int) -> str:
    first17 = f"11010519900101{n % 900:03d}"  # fixed numbers in the tests are 900 and above
    return first17 + id_check_char(first17)


def add_customer(p: Platform, name: str, *, n: int, created_at: datetime | None = None) -> int:
    """A verified customer: the customer row and its identity (encrypted, blind-indexed)."""
    vault = p.vault
    number = id_number(n)
    with p.engine.begin() as conn:
        cid = int(
            conn.execute(
                customer.insert().returning(customer.c.customer_id),
                {"name": name, "created_at": created_at or p.now()},
            ).scalar_one()
        )
        conn.execute(
            identity.insert(),
            {
                "customer_id": cid,
                "id_number_hash": vault.blind(number, kind="id_number"),
                "id_number_enc": vault.encrypt(number, column="identity.id_number"),
                "id_number_masked": number[:4] + "*" * 10 + number[-4:],
                "birth_date": date(1990, 1, 1),
                "is_male": True,
                "source": "form",
                "verified_at": p.now(),
            },
        )
    return cid


def link(p: Platform, channel: str, open_id: str, cid: int) -> None:
    """Onboarding's step: the verified customer owns this channel identity."""
    with p.engine.begin() as conn:
        done = conn.execute(
            channel_identity.update()
            .where(channel_identity.c.channel == channel, channel_identity.c.open_id == open_id)
            .values(customer_id=cid, linked_at=p.now())
        ).rowcount
        if done == 0:
            conn.execute(
                channel_identity.insert(),
                {
                    "channel": channel,
                    "open_id": open_id,
                    "customer_id": cid,
                    "created_at": p.now(),
                    "linked_at": p.now(),
                },
            )


def add_card(p: Platform, cid: int, number: str) -> None:
    vault = p.vault
    with p.engine.begin() as conn:
        conn.execute(
            bank_card.insert(),
            {
                "customer_id": cid,
                "card_hash": vault.blind(number, kind="card"),
                "card_enc": vault.encrypt(number, column="bank_card.number"),
                "card_masked": number[:4] + "*" * (len(number) - 8) + number[-4:],
                "bank_code": "ICBC",
                "card_type": "debit",
                "is_default": True,
                "status": "bound",
                "verified_at": p.now(),
            },
        )


def add_decision(p: Platform, cid: int, device: str) -> None:
    with p.engine.begin() as conn:
        conn.execute(
            decision.insert(),
            {
                "customer_id": cid,
                "channel": "wechat",
                "kind": "apply",
                "outcome": "approved",
                "reasons": "[]",
                "record": "{}",
                "device_id": device,
                "business_date": START,
                "created_at": p.now(),
            },
        )


_numbers = itertools.count(1)


def inviter(
    p: Platform, open_id: str = "inviter", *, device: str = "dev-inviter"
) -> tuple[int, str]:
    """A white-listed user who became a verified customer: (customer id, their code)."""
    inv.run_whitelist(p, "wechat", [good(open_id, device=device)], seed=1)
    cid = add_customer(p, f"邀请人{open_id}", n=next(_numbers))
    link(p, "wechat", open_id, cid)
    add_card(p, cid, f"62220200000{next(_numbers):05d}")
    return cid, inv.referral_code_of(p, "wechat", open_id)


def invitee(
    p: Platform, code: str, open_id: str, *, device: str | None = None, card: str | None = None
) -> int:
    """A new user who enters through ``code``, is verified and binds a card: their customer id."""
    inv.enter_with_code(p, "wechat", open_id, code, device_id=device or f"dev-{open_id}")
    cid = add_customer(p, f"新客{open_id}", n=next(_numbers))
    link(p, "wechat", open_id, cid)
    add_card(p, cid, card or f"62220300000{next(_numbers):05d}")
    return cid


def grant(p: Platform, cid: int) -> list[dict[str, Any]]:
    """The decision service's grant: the line and the referral settlement, one transaction."""
    lending.grant_line(p, cid, 1_000_000, DailyRate.parse("0.0005"))
    return p.transaction(lambda conn: inv.settle_referral(conn, p, cid, START))


def referral_row(p: Platform, open_id: str) -> Any:
    with p.engine.connect() as conn:
        return conn.execute(sa.select(referral).where(referral.c.invitee_open_id == open_id)).one()


def rewards_of(p: Platform, cid: int) -> list[tuple[str, int]]:
    with p.engine.connect() as conn:
        return [
            (r.role, r.amount_fen)
            for r in conn.execute(
                sa.select(reward).where(reward.c.customer_id == cid).order_by(reward.c.reward_id)
            )
        ]


# ---------------------------------------------------------------------------------------------
# Channels


def test_a_third_channel_is_configuration(p: Platform) -> None:
    assert [c["code"] for c in inv.list_channels(p)] == ["qq", "wechat"]
    added = inv.add_channel(p, "Weibo", "微博", "Weibo", 3)
    assert added == {
        "code": "weibo",
        "name_zh": "微博",
        "name_en": "Weibo",
        "daily_invite_quota": 3,
        "active": True,
    }
    assert [c["code"] for c in inv.list_channels(p)] == ["qq", "wechat", "weibo"]
    result = inv.run_whitelist(p, "weibo", people(5), seed=7)
    assert result["invited"] == 3
    assert refusal(inv.add_channel, p, "weibo", "微博", "Weibo", 3).code == "channel.exists"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("x", "名", "Name", 1), "code"),
        (("1abc", "名", "Name", 1), "code"),
        (("ok_code", "", "Name", 1), "name_zh"),
        (("ok_code", "名", "N" * 41, 1), "name_en"),
        (("ok_code", "名", "Name", -1), "quota"),
    ],
)
def test_bad_channels_are_refused(p: Platform, args: tuple[Any, ...], field: str) -> None:
    before = row_counts(p)
    err = refusal(inv.add_channel, p, *args)
    assert isinstance(err, InvalidInput) and err.field == field
    assert row_counts(p) == before


def test_unknown_and_inactive_channels_are_refused(p: Platform) -> None:
    err = refusal(inv.run_whitelist, p, "weibo", people(1), seed=1)
    assert (err.code, err.field) == ("channel.unknown", "channel")
    with p.engine.begin() as conn:
        conn.execute(sa.text("UPDATE channel SET active = false WHERE code = 'qq'"))
    assert refusal(inv.run_whitelist, p, "qq", people(1), seed=1).code == "channel.unknown"
    assert refusal(inv.referral_code_of, p, "qq", "u0000").code == "channel.unknown"


# ---------------------------------------------------------------------------------------------
# White-list batches


def test_a_batch_invites_within_the_quota_and_records_why(p: Platform) -> None:
    result = inv.run_whitelist(p, "qq", people(8), seed=3, quota=5)
    assert {k: result[k] for k in ("screened", "eligible", "invited", "quota")} == {
        "screened": 8,
        "eligible": 8,
        "invited": 5,
        "quota": 5,
    }
    assert result["already_invited_today"] == 0
    listed = inv.list_invitations(p, "qq")
    assert listed["count"] == 5
    assert listed["batches"] == [
        {"batch_id": result["batch_id"], "seed": 3, "screened": 8, "eligible": 8, "invited": 5}
    ]
    first = listed["invitations"][0]
    assert first["kind"] == "whitelist" and first["status"] == "live"
    assert first["expires_on"] == (START + timedelta(days=30)).isoformat()
    assert first["reason"]["conditions"] == W.CreditConditions().as_dict()
    assert first["reason"]["figures"] == {
        "months_active": 12,
        "active_days_90": 45,
        "payments_90d": 20,
    }
    assert first["reason"]["seed"] == 3
    # every invitee got a personal, genuine code
    codes = [i["referral_code"] for i in listed["invitations"]]
    assert len(set(codes)) == 5
    assert all(referral_codes.is_genuine(p.vault, c) for c in codes)


def test_two_batches_on_one_date_never_exceed_the_quota(p: Platform) -> None:
    inv.add_channel(p, "weibo", "微博", "Weibo", 10)
    first = inv.run_whitelist(p, "weibo", people(6, "a"), seed=1)
    second = inv.run_whitelist(p, "weibo", people(20, "b"), seed=1)
    third = inv.run_whitelist(p, "weibo", people(20, "c"), seed=1)
    assert (first["invited"], second["invited"], third["invited"]) == (6, 4, 0)
    assert (second["already_invited_today"], third["already_invited_today"]) == (6, 10)
    assert len(invited_ids(p, "weibo")) == 10
    # a lower quota for the day counts what was already invited too
    assert inv.run_whitelist(p, "weibo", people(5, "d"), seed=1, quota=3)["invited"] == 0
    # the next business date has a fresh quota
    set_date(p, START + timedelta(days=1))
    assert inv.run_whitelist(p, "weibo", people(20, "e"), seed=1)["invited"] == 10
    # an explicit business date counts that date's batches
    on_start = inv.run_whitelist(p, "weibo", people(5, "f"), seed=1, business_date=START)
    assert on_start["invited"] == 0


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_concurrent_batches_never_exceed_the_quota(p: Platform, backend: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    inv.add_channel(p, "weibo", "微博", "Weibo", 10)
    url = p.engine.url.render_as_string(hide_password=False)
    clients = [Platform.connect(url, now=p.now, pool_size=1) for _ in range(4)]
    barrier = threading.Barrier(len(clients))

    def batch(pair: tuple[int, Platform]) -> int:
        n, client = pair
        barrier.wait(timeout=30)
        return int(inv.run_whitelist(client, "weibo", people(8, f"t{n}-"), seed=n)["invited"])

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            invited = list(pool.map(batch, enumerate(clients)))
    finally:
        for c in clients:
            c.dispose()
    assert sum(invited) == 10
    assert len(invited_ids(p, "weibo")) == 10


def test_a_quota_above_the_channels_is_refused_and_nothing_written(p: Platform) -> None:
    before = row_counts(p)
    err = refusal(inv.run_whitelist, p, "qq", people(3), seed=1, quota=501)
    assert (err.code, err.field) == ("invitation.quota.above_channel", "quota")
    assert refusal(inv.run_whitelist, p, "qq", people(3), seed=-1).field == "seed"
    assert row_counts(p) == before


def test_same_seed_same_inputs_same_invitees(make_platform: MakePlatform) -> None:
    crowd = people(200)
    shuffled = crowd[:]
    random.Random(99).shuffle(shuffled)
    runs = []
    for candidates, seed in ((crowd, 42), (shuffled, 42), (crowd, 43)):
        p = make_platform()
        set_date(p, START)
        inv.run_whitelist(p, "qq", candidates, seed=seed, quota=25)
        runs.append(invited_ids(p, "qq"))
    assert len(runs[0]) == 25
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_nobody_is_invited_twice_while_live(p: Platform) -> None:
    crowd = people(10)
    assert inv.run_whitelist(p, "wechat", crowd, seed=1)["invited"] == 10
    set_date(p, START + timedelta(days=29))
    again = inv.run_whitelist(p, "wechat", crowd, seed=1)
    assert (again["eligible"], again["invited"]) == (0, 0)
    assert again["not_eligible"] == {W.LIVE_INVITATION: 10}
    codes_before = {o: inv.referral_code_of(p, "wechat", o) for o in invited_ids(p)}
    # on the expiry date the invitation is no longer live: invited again, same personal code
    set_date(p, START + timedelta(days=30))
    renewed = inv.run_whitelist(p, "wechat", crowd, seed=1)
    assert renewed["invited"] == 10
    assert len(invited_ids(p, status="expired")) == 10
    assert len(invited_ids(p)) == 10
    assert {o: inv.referral_code_of(p, "wechat", o) for o in invited_ids(p)} == codes_before


def test_blocked_devices_and_the_platforms_history_are_screened_out(p: Platform) -> None:
    with p.engine.begin() as conn:
        conn.execute(
            blocked_list.insert(),
            {
                "kind": "device",
                "value_hash": p.vault.blind("dev-bad", kind="device"),
                "reason": "fraud ring",
                "added_at": p.now(),
            },
        )
    overdue = add_customer(p, "逾期", n=901)
    holder = add_customer(p, "有额度", n=902)
    declined = add_customer(p, "无额度", n=903)
    for cid, open_id in ((overdue, "h-overdue"), (holder, "h-line"), (declined, "h-noline")):
        link(p, "wechat", open_id, cid)
    for cid in (overdue, holder):
        lending.grant_line(p, cid, 500_000, DailyRate.parse("0.0005"))
    with p.engine.begin() as conn:
        conn.execute(
            credit_line.update()
            .where(credit_line.c.customer_id == overdue)
            .values(overdue_blocked=True)
        )
    candidates = [
        good("clean"),
        good("blocked", device="dev-bad"),
        good("okdevice", device="dev-good"),
        good("h-overdue"),
        good("h-line"),
        good("h-noline"),
        good("new", months_active=2),
        good("quiet", active_days_90=3),
        good("payless", payments_90d=0),
        good("clean"),  # twice in one input
        Candidate(open_id="", months_active=12, active_days_90=45, payments_90d=20),
    ]
    result = inv.run_whitelist(p, "wechat", candidates, seed=5)
    assert result["screened"] == 11
    assert result["not_eligible"] == {
        W.BLOCKED_DEVICE: 1,
        W.LINE_BLOCKED: 1,
        W.ALREADY_CUSTOMER: 1,
        W.BELOW_MONTHS_ACTIVE: 1,
        W.BELOW_ACTIVE_DAYS: 1,
        W.BELOW_PAYMENTS: 1,
        W.DUPLICATE: 1,
        W.MALFORMED: 1,
    }
    assert len(result["rejected"]) == 1
    assert invited_ids(p) == {"clean", "okdevice", "h-noline"}
    # a known identity keeps its row and gets a code
    assert referral_codes.is_genuine(p.vault, inv.referral_code_of(p, "wechat", "h-noline"))


# ---------------------------------------------------------------------------------------------
# Codes: the public check, entering through a code


def test_code_round_trip_and_the_public_check(p: Platform) -> None:
    inv.run_whitelist(p, "qq", [good("alice")], seed=1)
    code = inv.referral_code_of(p, "qq", "alice")
    assert referral_codes.normalise(code) == code
    before = row_counts(p)
    answer = inv.check_code(p, code.lower().replace("-", " "))
    assert answer["code"] == code and answer["genuine"] is True and answer["channel"] == "qq"
    assert "开通免费" in answer["message_zh"] and "free" in answer["message_en"]
    # a forged code (one character changed), a genuine but never issued one, another key's code
    forged = forge(code)
    unissued = referral_codes.issue(p.vault, b"\x00\x01\x02\x03\x04")
    other = referral_codes.issue(Vault.from_master(b"k" * 32), b"\x00\x01\x02\x03\x04")
    for text in (forged, unissued, other, "hello", "", "x" * 500):
        answer = inv.check_code(p, text)
        assert answer["genuine"] is False and answer["channel"] is None, text
        assert "代开通" in answer["message_zh"]
    assert len(inv.check_code(p, "x" * 500)["code"]) <= 64
    assert row_counts(p) == before  # the check never writes
    assert refusal(inv.referral_code_of, p, "qq", "bob").code == "invitation.not_invited"


def test_entering_through_a_code_invites_and_records_the_referral(p: Platform) -> None:
    inv.run_whitelist(p, "wechat", [good("alice")], seed=1)
    alice = inv.referral_code_of(p, "wechat", "alice")
    entered = inv.enter_with_code(p, "qq", "bob", alice.lower(), device_id="dev-bob")
    assert entered["invited"] is True and entered["inviter_code"] == alice
    assert entered["referral"] == "recorded"
    bob = inv.referral_code_of(p, "qq", "bob")
    assert entered["referral_code"] == bob != alice
    ref = referral_row(p, "bob")
    assert (ref.status, ref.referral_code, ref.inviter_customer_id) == ("pending", alice, None)
    assert ref.campaign == Settings().referral_campaign
    listed = inv.list_invitations(p, "qq")["invitations"]
    assert [(i["open_id"], i["kind"], i["inviter_code"]) for i in listed] == [
        ("bob", "referral", alice)
    ]
    assert listed[0]["reason"]["inviter_code"] == alice
    # bob can share too: carol enters through bob's code
    inv.enter_with_code(p, "qq", "carol", bob)
    assert referral_row(p, "carol").referral_code == bob
    # the inviter's customer id is recorded when the code's owner already is one
    cid = add_customer(p, "爱丽丝", n=910)
    link(p, "wechat", "alice", cid)
    inv.enter_with_code(p, "wechat", "dave", alice)
    assert referral_row(p, "dave").inviter_customer_id == cid


def test_bad_codes_are_refused_and_nothing_written(p: Platform) -> None:
    inv.run_whitelist(p, "wechat", [good("alice")], seed=1)
    alice = inv.referral_code_of(p, "wechat", "alice")
    forged = forge(alice)
    unissued = referral_codes.issue(p.vault, b"\x09\x08\x07\x06\x05")
    inv.enter_with_code(p, "wechat", "bob", alice)
    cid = add_customer(p, "客户", n=911)
    link(p, "wechat", "carol", cid)
    before = row_counts(p)
    cases = [
        ("erin", "hello", InvalidInput, "invitation.code.format"),
        ("erin", forged, InvalidInput, "invitation.code.forged"),
        ("erin", unissued, InvalidInput, "invitation.code.unknown"),
        ("alice", alice, RuleViolation, "invitation.code.own"),
        ("bob", alice, RuleViolation, "invitation.already_invited"),  # live referral invitation
        ("carol", alice, RuleViolation, "invitation.already_invited"),  # already a customer
    ]
    for open_id, code, kind, expected in cases:
        err = refusal(inv.enter_with_code, p, "wechat", open_id, code)
        assert isinstance(err, kind) and (err.code, err.field) == (expected, "code"), open_id
    assert row_counts(p) == before
    # a white-listed user with a live invitation entering someone else's code
    inv.run_whitelist(p, "wechat", [good("frank")], seed=1)
    before = row_counts(p)
    assert refusal(inv.enter_with_code, p, "wechat", "frank", alice).code == (
        "invitation.already_invited"
    )
    assert row_counts(p) == before
    for bad in ("", " x", "y" * 65):
        assert refusal(inv.enter_with_code, p, "wechat", bad, alice).field == "open_id"
    assert refusal(inv.enter_with_code, p, "wechat", "z", alice, device_id="").field == "device_id"


def test_re_entering_after_expiry_keeps_the_first_referral(p: Platform) -> None:
    inv.run_whitelist(p, "wechat", [good("alice"), good("amy")], seed=1)
    alice = inv.referral_code_of(p, "wechat", "alice")
    amy = inv.referral_code_of(p, "wechat", "amy")
    first = inv.enter_with_code(p, "wechat", "bob", alice)
    set_date(p, START + timedelta(days=31))
    second = inv.enter_with_code(p, "wechat", "bob", amy)
    assert second["referral"] == "kept_first" and second["referral_id"] == first["referral_id"]
    assert second["referral_code"] == first["referral_code"]
    assert referral_row(p, "bob").referral_code == alice


# ---------------------------------------------------------------------------------------------
# Rewards


def test_both_sides_are_rewarded_and_booked(p: Platform) -> None:
    a, code = inviter(p)
    b = invitee(p, code, "bob")
    settled = grant(p, b)
    assert len(settled) == 1
    assert (settled[0]["status"], settled[0]["outcome"]) == ("rewarded", R.REWARD_BASE)
    assert {(r["customer_id"], r["role"], r["amount_fen"]) for r in settled[0]["rewards"]} == {
        (a, "inviter", 500),
        (b, "invitee", 500),
    }
    ref = referral_row(p, "bob")
    assert (ref.status, ref.inviter_customer_id, ref.invitee_customer_id) == ("rewarded", a, b)
    balances = account_balances(p)
    assert balances[Account.MARKETING_EXPENSE.value] == 1000
    assert balances[Account.REWARD_PAYABLE.value] == -1000
    with p.engine.connect() as conn:
        entries = conn.execute(
            sa.text(
                "SELECT e.customer_id, e.kind, e.business_date, SUM(l.amount_fen) AS total "
                "FROM journal_entry e JOIN journal_line l ON l.entry_id = e.entry_id "
                "JOIN reward r ON r.entry_id = e.entry_id "
                "GROUP BY e.entry_id, e.customer_id, e.kind, e.business_date"
            )
        ).all()
    assert sorted((e.customer_id, e.kind, e.total) for e in entries) == sorted(
        [(a, "reward", 0), (b, "reward", 0)]
    )
    assert all(str(e.business_date) == START.isoformat() for e in entries)
    report = assert_ledger_ok(p)
    assert report["problem_count"] == 0
    listed = inv.list_rewards(p, a)
    assert listed["totals"] == {"inviter": {"rewards": 1, "amount": "5.00"}}
    assert inv.list_rewards(p)["totals"]["invitee"] == {"rewards": 1, "amount": "5.00"}


def test_rewards_and_loans_together_keep_the_ledger_balanced(p: Platform) -> None:
    _, code = inviter(p)
    b = invitee(p, code, "bob")
    grant(p, b)
    draw(p, b, "2000", 6)
    report = assert_ledger_ok(p)
    assert report["loans_checked"] == 1


def test_the_inviters_reward_doubles_then_stops_at_the_cap(p: Platform) -> None:
    p.settings = Settings(referral_reward_fen=500, referral_double_after=2, referral_cap_fen=2500)
    a, code = inviter(p)
    outcomes = []
    for n in range(5):
        b = invitee(p, code, f"friend{n}")
        outcomes.append(grant(p, b)[0]["outcome"])
        assert rewards_of(p, b) == [("invitee", 500)]
    assert outcomes == [
        R.REWARD_BASE,
        R.REWARD_BASE,
        R.REWARD_DOUBLED,
        R.REWARD_CAPPED,
        R.REWARD_CAP_REACHED,
    ]
    assert [amount for _, amount in rewards_of(p, a)] == [500, 500, 1000, 500]
    assert account_balances(p)[Account.MARKETING_EXPENSE.value] == 2500 + 5 * 500
    assert_ledger_ok(p)


def _assert_no_reward(p: Platform, open_id: str, outcome: str, *cids: int) -> None:
    ref = referral_row(p, open_id)
    assert (ref.status, ref.outcome) == ("no_reward", outcome)
    for cid in cids:
        assert rewards_of(p, cid) == []


def test_a_shared_entry_device_earns_nothing(p: Platform) -> None:
    a, code = inviter(p, device="dev-shared")
    b = invitee(p, code, "bob", device="dev-shared")
    settled = grant(p, b)
    assert settled[0]["reasons"] == [R.SHARED_DEVICE]
    _assert_no_reward(p, "bob", R.SHARED_DEVICE, a, b)
    assert Account.MARKETING_EXPENSE.value not in account_balances(p)


def test_a_device_shared_through_a_decision_earns_nothing(p: Platform) -> None:
    a, code = inviter(p)
    b = invitee(p, code, "bob")
    add_decision(p, a, "dev-phone")
    add_decision(p, b, "dev-phone")
    grant(p, b)
    _assert_no_reward(p, "bob", R.SHARED_DEVICE, a, b)


def test_a_shared_bank_card_earns_nothing(p: Platform) -> None:
    a, code = inviter(p)
    add_card(p, a, "6222020000099999")
    b = invitee(p, code, "bob", card="6222020000099999")
    grant(p, b)
    _assert_no_reward(p, "bob", R.SHARED_CARD, a, b)


def test_the_same_identity_document_earns_nothing(p: Platform) -> None:
    a, code = inviter(p)
    # the inviter enters their own code through their QQ account, then verifies as themselves
    inv.enter_with_code(p, "qq", "alice-qq", code, device_id="dev-qq")
    link(p, "qq", "alice-qq", a)
    settled = grant(p, a)
    assert settled[0]["outcome"] == R.SAME_IDENTITY
    _assert_no_reward(p, "alice-qq", R.SAME_IDENTITY, a)


def test_an_invitee_already_known_earns_nothing(p: Platform) -> None:
    a, code = inviter(p)
    # a customer from before the referral, entering through a new open id
    old = add_customer(p, "老客户", n=920, created_at=T0 - timedelta(days=100))
    inv.enter_with_code(p, "wechat", "old-new-id", code)
    link(p, "wechat", "old-new-id", old)
    grant(p, old)
    _assert_no_reward(p, "old-new-id", R.ALREADY_KNOWN, a, old)


def test_an_invitee_white_listed_before_earns_nothing(p: Platform) -> None:
    a, code = inviter(p)
    inv.run_whitelist(p, "wechat", [good("earlier")], seed=1)
    set_date(p, START + timedelta(days=30))  # the white-list invitation expires unused
    b = invitee(p, code, "earlier")
    grant(p, b)
    _assert_no_reward(p, "earlier", R.ALREADY_KNOWN, a, b)


def test_no_reward_while_the_inviter_is_not_a_customer(p: Platform) -> None:
    inv.run_whitelist(p, "wechat", [good("alice")], seed=1)
    code = inv.referral_code_of(p, "wechat", "alice")
    b = invitee(p, code, "bob")
    grant(p, b)
    _assert_no_reward(p, "bob", R.INVITER_NOT_CUSTOMER, b)
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(reward)).scalar_one() == 0


def test_one_person_through_two_channels_is_rewarded_once(p: Platform) -> None:
    a, code = inviter(p)
    b = invitee(p, code, "bob")
    inv.enter_with_code(p, "qq", "bob-qq", code, device_id="dev-bob-qq")
    link(p, "qq", "bob-qq", b)
    settled = grant(p, b)
    assert [s["status"] for s in settled] == ["rewarded", "no_reward"]
    assert settled[1]["outcome"] == R.DUPLICATE
    assert rewards_of(p, b) == [("invitee", 500)]
    assert rewards_of(p, a) == [("inviter", 500)]


def test_settling_twice_books_once(p: Platform) -> None:
    a, code = inviter(p)
    b = invitee(p, code, "bob")
    assert len(grant(p, b)) == 1
    assert p.transaction(lambda conn: inv.settle_referral(conn, p, b, START)) == []
    assert rewards_of(p, a) == [("inviter", 500)] and rewards_of(p, b) == [("invitee", 500)]
    # a customer without any referral, or without channel identities, settles nothing
    plain = add_customer(p, "无邀请", n=930)
    assert p.transaction(lambda conn: inv.settle_referral(conn, p, plain, START)) == []
    assert_ledger_ok(p)


def test_a_failed_grant_books_no_reward(p: Platform) -> None:
    _, code = inviter(p)
    b = invitee(p, code, "bob")

    def grant_then_fail(conn: sa.Connection) -> None:
        inv.settle_referral(conn, p, b, START)
        raise MicroloanError("the grant failed after settling", code="test.failed")

    refusal(p.transaction, grant_then_fail)
    assert referral_row(p, "bob").status == "pending"
    assert rewards_of(p, b) == []
    assert len(grant(p, b)) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_two_concurrent_settlements_book_one_reward(p: Platform, backend: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    a, code = inviter(p)
    b = invitee(p, code, "bob")
    lending.grant_line(p, b, 1_000_000, DailyRate.parse("0.0005"))
    url = p.engine.url.render_as_string(hide_password=False)
    clients = [Platform.connect(url, now=p.now, pool_size=1) for _ in range(2)]
    barrier = threading.Barrier(len(clients))

    def settle(client: Platform) -> list[dict[str, Any]]:
        def work(conn: sa.Connection) -> list[dict[str, Any]]:
            barrier.wait(timeout=30)
            return inv.settle_referral(conn, client, b, START)

        return client.transaction(work)

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            results = list(pool.map(settle, clients))
    finally:
        for c in clients:
            c.dispose()
    assert sorted(len(r) for r in results) == [0, 1]
    assert rewards_of(p, a) == [("inviter", 500)] and rewards_of(p, b) == [("invitee", 500)]
    assert_ledger_ok(p)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_concurrent_invitees_of_one_inviter_stay_under_the_cap(p: Platform, backend: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    p.settings = Settings(referral_reward_fen=500, referral_double_after=100, referral_cap_fen=1500)
    a, code = inviter(p)
    friends = [invitee(p, code, f"friend{n}") for n in range(6)]
    for b in friends:
        lending.grant_line(p, b, 1_000_000, DailyRate.parse("0.0005"))
    url = p.engine.url.render_as_string(hide_password=False)
    clients = [Platform.connect(url, now=p.now, pool_size=1, settings=p.settings) for _ in friends]
    barrier = threading.Barrier(len(clients))

    def settle(pair: tuple[Platform, int]) -> list[dict[str, Any]]:
        client, cid = pair

        def work(conn: sa.Connection) -> list[dict[str, Any]]:
            barrier.wait(timeout=30)
            return inv.settle_referral(conn, client, cid, START)

        return client.transaction(work)

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            list(pool.map(settle, zip(clients, friends, strict=True)))
    finally:
        for c in clients:
            c.dispose()
    assert sum(amount for _, amount in rewards_of(p, a)) == 1500
    assert_ledger_ok(p)


# ---------------------------------------------------------------------------------------------
# The `invite` commands, in process (the subprocess test runs once `invite` is registered)


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(invite_app, [*args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _refused(*args: str) -> str:
    result = CliRunner().invoke(invite_app, [*args, "--json"])
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def db(p: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test database's URL; the platforms the commands open in process are closed after."""
    import microloan.cli.invite_cmd as cmd

    opened: list[Platform] = []

    def connect(database: str | None) -> Platform:
        opened.append(Platform.connect(database, now=p.now))
        return opened[-1]

    monkeypatch.setattr(cmd, "platform", connect)
    yield p.engine.url.render_as_string(hide_password=False)
    for made in opened:
        made.dispose()


def test_the_invite_commands(p: Platform, db: str) -> None:
    d = ("--database", db)
    assert [c["code"] for c in _invoke("channels", *d)] == ["qq", "wechat"]
    added = _invoke(
        "channel-add",
        "--code",
        "weibo",
        "--name-zh",
        "微博",
        "--name-en",
        "Weibo",
        "--quota",
        "5",
        *d,
    )
    assert added["daily_invite_quota"] == 5
    inv.run_whitelist(p, "weibo", [good("alice")], seed=1)
    code = _invoke("code", "--channel", "weibo", "--open-id", "alice", *d)["referral_code"]
    assert _invoke("check", code, *d)["genuine"] is True
    assert _invoke("check", "AAAA-BBBB-CCCC-DDDD", *d)["genuine"] is False
    entered = _invoke("enter", "--channel", "qq", "--open-id", "bob", "--code", code, *d)
    assert entered["inviter_code"] == code
    listed = _invoke("list", "--channel", "qq", "--date", START.isoformat(), *d)
    assert [i["open_id"] for i in listed["invitations"]] == ["bob"]
    assert _invoke("rewards", *d)["rewards"] == []
    before = row_counts(p)
    assert "invitation.code.forged" in _refused(
        "enter", "--channel", "qq", "--open-id", "carol", "--code", forge(code), *d
    )
    assert "channel.unknown" in _refused("code", "--channel", "nope", "--open-id", "x", *d)
    assert "channel.exists" in _refused(
        "channel-add", "--code", "qq", "--name-zh", "Q", "--name-en", "Q", "--quota", "1", *d
    )
    assert "[date]" in _refused("list", "--channel", "qq", "--date", "yesterday", *d)
    assert "[customer]" in _refused("rewards", "--customer", "0", *d)
    assert row_counts(p) == before


def _require_invite_command() -> None:
    """Skip until `microloan invite` is registered in the application."""
    from microloan.cli.app import app

    if not any(g.name == "invite" for g in app.registered_groups):
        pytest.skip("`microloan invite` is not registered in microloan.cli.app yet")


def _run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh interpreter, with the tests' data key (the codes are
    signed with it) and nothing else from the caller's MICROLOAN_* environment."""
    from .test_cli import TIMEOUT_S, _command

    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROLOAN_")}
    env |= {"COLUMNS": "200", "MICROLOAN_DATA_KEY": os.environ["MICROLOAN_DATA_KEY"]}
    return subprocess.run(
        [*_command(), *args, "--database", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=False)
def test_the_invite_command_as_a_user_runs_it(p: Platform, db: str, backend: str) -> None:
    _require_invite_command()
    inv.run_whitelist(p, "wechat", [good("alice")], seed=1)
    code = inv.referral_code_of(p, "wechat", "alice")
    done = _run("invite", "check", code, "--json", db=db)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    answer = json.loads(done.stdout)
    assert answer["genuine"] is True and "开通免费" in answer["message_zh"]
    entered = _run("invite", "enter", "--channel", "qq", "--open-id", "bob", "--code", code, db=db)
    assert entered.returncode == 0, entered.stderr
    assert referral_row(p, "bob").referral_code == code
    own = _run(
        "invite", "enter", "--channel", "wechat", "--open-id", "alice", "--code", code, db=db
    )
    assert own.returncode == 2 and own.stdout == ""
    assert own.stderr.startswith("error: invitation.code.own [code]")
    assert len(own.stderr.splitlines()) == 1
