"""Onboarding on both databases: identity, linking across channels, phone, cards, consents, and
personal data encrypted at rest (read back from the raw tables)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from microloan.access.identity import id_check_char, luhn_valid
from microloan.domain.rates import DailyRate
from microloan.errors import InvalidInput, MicroloanError, NotFound, RuleViolation
from microloan.providers.ports import HolderCheck
from microloan.service import lending, onboarding
from microloan.service.platform import Platform
from microloan.store.schema import (
    bank_card,
    channel_identity,
    identity,
    invitation,
    onboarding_step,
)

ID_NUMBER = "11010519491231002X"  # the standard's own example: too old for the product
YOUNG = "440305" + "19900307" + "123"
YOUNG += id_check_char(YOUNG)  # born 1990-03-07, Shenzhen Nanshan


def card(prefix: str = "622202", body: str = "000012345") -> str:
    """A Luhn-valid card on an ICBC BIN."""
    head = prefix + body
    for d in "0123456789":
        if luhn_valid(head + d):
            return head + d
    raise AssertionError


class Rail:
    """The holder-verification port, answering from a dictionary of known cards."""

    def __init__(self, owners: dict[str, tuple[str, str]]) -> None:
        self.owners = owners
        self.calls = 0

    def verify_holder(self, card_number: str, name: str, id_number: str, phone: str) -> HolderCheck:
        self.calls += 1
        owner = self.owners.get(card_number)
        if owner is None:
            return HolderCheck(False, "card.unknown")
        if owner != (name, id_number):
            return HolderCheck(False, "holder.name_mismatch")
        return HolderCheck(True, "ok")


def invite(p: Platform, channel: str, open_id: str) -> None:
    """An invited channel user, as the invitation service leaves one."""
    now = datetime(2026, 1, 31, tzinfo=UTC)
    with p.engine.begin() as conn:
        conn.execute(
            channel_identity.insert(),
            {"channel": channel, "open_id": open_id, "created_at": now, "device_id": "dev-1"},
        )
        conn.execute(
            invitation.insert(),
            {
                "channel": channel,
                "open_id": open_id,
                "kind": "whitelist",
                "status": "live",
                "reason": "{}",
                "business_date": now.date(),
                "expires_on": now.date(),
                "created_at": now,
            },
        )


def onboarded(p: Platform, open_id: str = "wx_a") -> int:
    invite(p, "wechat", open_id)
    out = onboarding.verify_identity(
        p, channel_code="wechat", open_id=open_id, name="张伟", id_number=YOUNG
    )
    return int(out["customer_id"])


def test_identity_creates_one_customer_and_links_other_channels(platform: Platform) -> None:
    cid = onboarded(platform)
    invite(platform, "qq", "qq_a")
    again = onboarding.verify_identity(
        platform, channel_code="qq", open_id="qq_a", name="张伟", id_number=YOUNG.lower()
    )
    assert again["customer_id"] == cid and again["linked_existing_customer"]
    assert again["id_number"] == "4403**********" + YOUNG[-4:]
    with platform.engine.connect() as conn:
        linked = conn.execute(
            sa.select(channel_identity.c.channel).where(channel_identity.c.customer_id == cid)
        ).scalars()
        assert sorted(linked) == ["qq", "wechat"]
        assert conn.execute(sa.select(invitation.c.status)).scalars().all() == [
            "accepted",
            "accepted",
        ]
    # the same channel user again: the same answer, nothing new
    same = onboarding.verify_identity(
        platform, channel_code="wechat", open_id="wx_a", name="张伟", id_number=YOUNG
    )
    assert same["customer_id"] == cid and not same["linked_existing_customer"]


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        (
            {"id_number": YOUNG[:-1] + ("0" if YOUNG[-1] != "0" else "1")},
            "identity.id_number.check_digit",
            "id_number",
        ),
        ({"id_number": ID_NUMBER}, "identity.age_out_of_range", "id_number"),
        ({"id_number": "12345"}, "identity.id_number.format", "id_number"),
        ({"name": "张"}, "input.invalid", "name"),
        ({"open_id": "wx_stranger"}, "onboarding.not_invited", "open_id"),
        ({"channel_code": "weibo"}, "channel.unknown", "channel"),
    ],
)
def test_identity_refusals_change_nothing(
    platform: Platform, kwargs: dict[str, str], code: str, field: str
) -> None:
    invite(platform, "wechat", "wx_a")
    args = {"channel_code": "wechat", "open_id": "wx_a", "name": "张伟", "id_number": YOUNG}
    with pytest.raises(MicroloanError) as err:
        onboarding.verify_identity(platform, **(args | kwargs))
    assert (err.value.code, err.value.field) == (code, field)
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(identity)).scalar_one() == 0


def test_another_person_cannot_take_a_verified_number(platform: Platform) -> None:
    onboarded(platform)
    invite(platform, "qq", "qq_b")
    with pytest.raises(RuleViolation) as err:
        onboarding.verify_identity(
            platform, channel_code="qq", open_id="qq_b", name="李娜", id_number=YOUNG
        )
    assert err.value.code == "identity.name_mismatch"


def test_personal_data_is_encrypted_at_rest_and_masked(platform: Platform) -> None:
    cid = onboarded(platform)
    onboarding.set_phone(platform, cid, "+86 138-0013-8000")
    number = card()
    onboarding.bind_card(platform, cid, number, rail=Rail({number: ("张伟", YOUNG)}))
    with platform.engine.connect() as conn:
        raw = " ".join(
            str(v)
            for table in (identity, bank_card, onboarding_step)
            for row in conn.execute(sa.select(table)).all()
            for v in row
        )
    for secret in (YOUNG, "13800138000", number):
        assert secret not in raw
    assert "138****8000" in raw and "4403**********" in raw
    shown = onboarding.profile(platform, cid)
    assert shown["phone"] == "138****8000" and shown["cards"][0]["card_number"].startswith("6222")
    assert [s["step"] for s in shown["steps"]] == ["identity", "phone", "bank_card"]
    with platform.engine.connect() as conn:
        assert onboarding.personal_data(platform, conn, cid)["id_number"] == YOUNG


def test_cards_holder_check_default_and_unbinding(platform: Platform) -> None:
    cid = onboarded(platform)
    first, second, foreign = card(body="000011111"), card(body="000022222"), card(body="000033333")
    rail = Rail({first: ("张伟", YOUNG), second: ("张伟", YOUNG), foreign: ("李娜", "x")})
    with pytest.raises(RuleViolation) as err:
        onboarding.bind_card(platform, cid, first, rail=rail)
    assert err.value.code == "onboarding.phone.missing"
    onboarding.set_phone(platform, cid, "13800138000")
    with pytest.raises(RuleViolation) as err:
        onboarding.bind_card(platform, cid, foreign, rail=rail)
    assert (err.value.code, err.value.field) == ("card.holder_mismatch", "card_number")
    with pytest.raises(InvalidInput) as err:
        onboarding.bind_card(platform, cid, first[:-1] + str((int(first[-1]) + 1) % 10), rail=rail)
    assert err.value.code == "card.number.luhn"
    cards = onboarding.bind_card(platform, cid, first, rail=rail)["cards"]
    assert cards[0]["default"] and cards[0]["bank"]  # the first card is the default
    cards = onboarding.bind_card(platform, cid, second, rail=rail)["cards"]
    assert [c["default"] for c in cards] == [True, False]
    assert onboarding.bind_card(platform, cid, second, rail=rail)["cards"] == cards  # again: same
    first_id, second_id = cards[0]["card_id"], cards[1]["card_id"]

    # a live loan auto-debits from the default card: it cannot be unbound, the other can
    lending.grant_line(platform, cid, 1_000_000, DailyRate.parse("0.0005"))
    lending.draw(platform, cid, 100_000, 3, lending.Method.EQUAL_PRINCIPAL, "d1")
    with pytest.raises(RuleViolation) as err:
        onboarding.unbind_card(platform, cid, first_id)
    assert (err.value.code, err.value.field) == ("card.unbind.live_loan", "card")
    onboarding.set_default_card(platform, cid, second_id)
    left = onboarding.unbind_card(platform, cid, first_id)["cards"]
    assert [(c["card_id"], c["default"]) for c in left] == [(second_id, True)]
    with pytest.raises(NotFound):
        onboarding.unbind_card(platform, cid, first_id)


def test_a_card_bound_by_another_customer_is_refused(platform: Platform) -> None:
    a = onboarded(platform, "wx_a")
    invite(platform, "wechat", "wx_b")
    other = "440305" + "19920101" + "456"
    other += id_check_char(other)
    b = onboarding.verify_identity(
        platform, channel_code="wechat", open_id="wx_b", name="李娜", id_number=other
    )["customer_id"]
    number = card()
    for cid in (a, b):
        onboarding.set_phone(platform, cid, "13800138000")
    onboarding.bind_card(platform, a, number, rail=Rail({number: ("张伟", YOUNG)}))
    with pytest.raises(RuleViolation) as err:
        onboarding.bind_card(platform, b, number, rail=Rail({number: ("李娜", other)}))
    assert err.value.code == "card.bound_elsewhere"


def test_consents_are_separate_versioned_and_withdrawable(platform: Platform) -> None:
    cid = onboarded(platform)
    out = onboarding.grant_consent(platform, cid, "credit_report", version="v1")
    assert out["consents"]["credit_report"]["granted"]
    assert not out["consents"]["sensitive_pi"]["granted"]
    with platform.engine.connect() as conn:
        onboarding.require_consents(conn, platform, cid, "credit_report")
        with pytest.raises(RuleViolation) as err:
            onboarding.require_consents(conn, platform, cid, "credit_report", "sensitive_pi")
        assert err.value.code == "consent.sensitive_pi.missing"
    with pytest.raises(InvalidInput) as err:
        onboarding.grant_consent(platform, cid, "credit_report", version="v0")
    assert err.value.code == "consent.version"
    with pytest.raises(InvalidInput) as err:
        onboarding.grant_consent(platform, cid, "marketing")
    assert (err.value.code, err.value.field) == ("consent.unknown", "kind")
    out = onboarding.withdraw_consent(platform, cid, "credit_report")
    assert not out["consents"]["credit_report"]["granted"]


def test_live_consents_read_at_once_agree_with_one_kind_at_a_time(platform: Platform) -> None:
    """The latest live consent of each kind, whether read together or kind by kind, through
    grants, a new version of the wording and withdrawals."""
    cid = onboarded(platform)
    kinds = sorted(platform.settings.consent_versions)

    def both() -> tuple[dict[str, str], dict[str, str]]:
        with platform.engine.connect() as conn:
            together = onboarding.live_consents(conn, cid, kinds)
            one_by_one = {k: onboarding.live_consent(conn, cid, k) for k in kinds}
        return together, {k: v for k, v in one_by_one.items() if v is not None}

    assert both() == ({}, {})
    for kind in kinds:
        onboarding.grant_consent(platform, cid, kind)
    together, alone = both()
    assert (
        together == alone == {"credit_report": "v1", "loan_agreement": "v1", "sensitive_pi": "v1"}
    )
    versions = {**platform.settings.consent_versions, "loan_agreement": "v2"}
    platform.settings = platform.settings.model_copy(update={"consent_versions": versions})
    onboarding.grant_consent(platform, cid, "loan_agreement")
    onboarding.withdraw_consent(platform, cid, "sensitive_pi")
    together, alone = both()
    assert together == alone == {"credit_report": "v1", "loan_agreement": "v2"}
    with platform.engine.connect() as conn:
        listed = onboarding.consent_list(conn, platform, cid)["consents"]
    assert {k: v["granted"] for k, v in listed.items()} == {
        "credit_report": True,
        "loan_agreement": True,
        "sensitive_pi": False,
    }
