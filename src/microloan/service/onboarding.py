"""Onboarding an invited channel user (access-and-decisions §2): identity, phone, bank cards and
consents, in that order, each step recorded with its time and source.

Personal data goes through the platform's vault: stored encrypted with a keyed lookup hash, and
only ever shown masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from microloan.access.identity import (
    check_age,
    check_card_number,
    check_phone,
    mask,
    mask_phone,
    parse_id_number,
)
from microloan.errors import InvalidInput, NotFound, RuleViolation
from microloan.providers.ports import HolderVerificationPort, OcrPort
from microloan.service.clock import read_clock
from microloan.service.platform import Platform
from microloan.store.prepared import Prepared
from microloan.store.schema import (
    bank_card,
    channel,
    channel_identity,
    consent,
    customer,
    identity,
    invitation,
    loan,
    onboarding_step,
)

CONSENT_KINDS = ("credit_report", "sensitive_pi", "loan_agreement")
LIVE_LOAN = ("pending", "open")


def record_step(
    conn: sa.Connection, p: Platform, customer_id: int, step: str, source: str, **detail: Any
) -> None:
    conn.execute(
        onboarding_step.insert(),
        {
            "customer_id": customer_id,
            "step": step,
            "source": source,
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
            "at": p.now(),
        },
    )


def require_channel(conn: sa.Connection, code: str) -> None:
    row = conn.execute(sa.select(channel.c.active).where(channel.c.code == code)).first()
    check_channel(code, None if row is None else row.active)


def check_channel(code: str, active: bool | None) -> None:
    """Refuses a channel that is unknown (``active`` None) or switched off."""
    if not active:
        raise InvalidInput(f"unknown channel {code!r}", code="channel.unknown", field="channel")


def _invited_identity(conn: sa.Connection, channel_code: str, open_id: str) -> Any:
    """The channel identity of an invited user; a user never invited cannot onboard."""
    row = conn.execute(
        sa.select(channel_identity).where(
            channel_identity.c.channel == channel_code, channel_identity.c.open_id == open_id
        )
    ).first()
    if row is None:
        raise RuleViolation(
            "this channel user has not been invited (the product is invitation only)",
            code="onboarding.not_invited",
            field="open_id",
        )
    return row


def read_identity_card(reader: OcrPort, image: bytes) -> tuple[str, str]:
    """Name and identity number from an ID-card photo through the OCR port."""
    fields = reader.read_id_card(image)
    return str(fields.name), str(fields.id_number)


def verify_identity(
    p: Platform,
    *,
    channel_code: str,
    open_id: str,
    name: str,
    id_number: str,
    source: str = "form",
    device_id: str | None = None,
    location: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Step 1: real name and identity number; links the channel user to one customer.

    ``location`` (the device's position, from the location port) is kept with the step: it is
    the first of the customer's usual places, which later applications are compared with.

    A person who already onboarded through another channel is the same customer: the channel
    identity is linked to it (matched by the identity number's lookup hash).
    """
    name = (name or "").strip()
    if not 2 <= len(name) <= 40:
        raise InvalidInput("a real name of 2–40 characters is required", field="name")
    vault = p.vault

    def work(conn: sa.Connection) -> dict[str, Any]:
        require_channel(conn, channel_code)
        today = read_clock(conn, p.now).open_date
        number = parse_id_number(id_number, on=today)
        s = p.settings
        age = check_age(number, on=today, min_age=s.age_min, max_age=s.age_max)
        ident = _invited_identity(conn, channel_code, open_id)
        id_hash = vault.blind(number.value, kind="id_number")
        known = conn.execute(
            sa.select(identity.c.customer_id, customer.c.name)
            .join(customer, customer.c.customer_id == identity.c.customer_id)
            .where(identity.c.id_number_hash == id_hash)
        ).first()
        if ident.customer_id is not None:
            if known is None or known.customer_id != ident.customer_id:
                raise RuleViolation(
                    "this channel user is already verified as another person",
                    code="identity.already_verified",
                    field="id_number",
                )
            return _identity_answer(known.customer_id, number.value, age, linked=False)
        if known is not None and known.name != name:
            raise RuleViolation(
                "the name does not match the one verified for this identity number",
                code="identity.name_mismatch",
                field="name",
            )
        now = p.now()
        if known is None:
            customer_id = int(
                conn.execute(
                    customer.insert().returning(customer.c.customer_id),
                    {"name": name, "created_at": now},
                ).scalar_one()
            )
            conn.execute(
                identity.insert(),
                {
                    "customer_id": customer_id,
                    "id_number_hash": id_hash,
                    "id_number_enc": vault.encrypt(number.value, column="identity.id_number"),
                    "id_number_masked": mask(number.value),
                    "birth_date": number.birth_date,
                    "is_male": number.is_male,
                    "source": source,
                    "verified_at": now,
                },
            )
        else:
            customer_id = int(known.customer_id)
        conn.execute(
            channel_identity.update()
            .where(
                channel_identity.c.channel == channel_code, channel_identity.c.open_id == open_id
            )
            .values(
                customer_id=customer_id,
                linked_at=now,
                device_id=sa.func.coalesce(channel_identity.c.device_id, device_id),
            )
        )
        conn.execute(
            invitation.update()
            .where(
                invitation.c.channel == channel_code,
                invitation.c.open_id == open_id,
                invitation.c.status == "live",
            )
            .values(status="accepted")
        )
        record_step(
            conn,
            p,
            customer_id,
            "identity",
            source,
            channel=channel_code,
            id_number=mask(number.value),
            linked_existing=known is not None,
            lat=None if location is None else round(location[0], 4),
            lon=None if location is None else round(location[1], 4),
        )
        return _identity_answer(customer_id, number.value, age, linked=known is not None)

    return p.transaction(work)


def _identity_answer(customer_id: int, number: str, age: int, *, linked: bool) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "id_number": mask(number),
        "age": age,
        "linked_existing_customer": linked,
    }


def set_phone(p: Platform, customer_id: int, phone: str) -> dict[str, Any]:
    """Step 2: the mobile number (format checked), stored encrypted."""
    value = check_phone(phone)
    vault = p.vault

    def work(conn: sa.Connection) -> dict[str, Any]:
        _require_identity(conn, customer_id)
        conn.execute(
            identity.update()
            .where(identity.c.customer_id == customer_id)
            .values(
                phone_hash=vault.blind(value, kind="phone"),
                phone_enc=vault.encrypt(value, column="identity.phone"),
                phone_masked=mask_phone(value),
            )
        )
        record_step(conn, p, customer_id, "phone", "form", phone=mask_phone(value))
        return {"customer_id": customer_id, "phone": mask_phone(value)}

    return p.transaction(work)


_IDENTITY = Prepared(
    sa.select(identity, customer.c.name)
    .join(customer, customer.c.customer_id == identity.c.customer_id)
    .where(identity.c.customer_id == sa.bindparam("cid"))
)


def _require_identity(conn: sa.Connection, customer_id: int) -> Any:
    row = _IDENTITY.first(conn, {"cid": customer_id})
    if row is None:
        raise not_verified(customer_id)
    return row


def not_verified(customer_id: int) -> NotFound:
    return NotFound(
        f"customer {customer_id} has not verified an identity",
        code="customer.not_verified",
        field="customer",
    )


def personal_data(p: Platform, conn: sa.Connection, customer_id: int) -> dict[str, Any]:
    """Decrypted name, identity number and phone: for providers only, never for display."""
    row = _require_identity(conn, customer_id)
    vault = p.vault
    return {
        "name": row.name,
        "id_number": vault.decrypt(row.id_number_enc, column="identity.id_number"),
        "phone": vault.decrypt(row.phone_enc, column="identity.phone") if row.phone_enc else None,
        "birth_date": row.birth_date,
    }


def bind_card(
    p: Platform,
    customer_id: int,
    card_number: str,
    *,
    rail: HolderVerificationPort,
    make_default: bool = False,
) -> dict[str, Any]:
    """Step 3: a card passing Luhn, its bank known by BIN, its holder verified by the rail."""
    from microloan.providers.bins import bank_of

    number = check_card_number(card_number)
    bank = bank_of(number)
    vault = p.vault
    card_hash = vault.blind(number, kind="card")

    def work(conn: sa.Connection) -> dict[str, Any]:
        person = personal_data(p, conn, customer_id)
        elsewhere = conn.execute(
            sa.select(bank_card.c.customer_id, bank_card.c.card_id).where(
                bank_card.c.card_hash == card_hash, bank_card.c.status == "bound"
            )
        ).first()
        if elsewhere is not None and elsewhere.customer_id != customer_id:
            raise RuleViolation(
                "this card is bound by another customer",
                code="card.bound_elsewhere",
                field="card_number",
            )
        if elsewhere is not None:
            return card_list(conn, customer_id)
        if person["phone"] is None:
            raise RuleViolation(
                "verify the mobile phone before binding a card",
                code="onboarding.phone.missing",
                field="phone",
            )
        check = rail.verify_holder(number, person["name"], person["id_number"], person["phone"])
        if not check.matched:
            raise RuleViolation(
                f"the payment rail could not verify the card holder ({check.reason})",
                code="card.holder_mismatch",
                field="card_number",
            )
        has_default = (
            conn.execute(
                sa.select(bank_card.c.card_id).where(
                    bank_card.c.customer_id == customer_id,
                    bank_card.c.status == "bound",
                    bank_card.c.is_default,
                )
            ).first()
            is not None
        )
        default = make_default or not has_default
        if default and has_default:
            _clear_default(conn, customer_id)
        conn.execute(
            bank_card.insert(),
            {
                "customer_id": customer_id,
                "card_hash": card_hash,
                "card_enc": vault.encrypt(number, column="bank_card.number"),
                "card_masked": mask(number),
                "bank_code": bank.code,
                "card_type": bank.card_type,
                "is_default": default,
                "status": "bound",
                "verified_at": p.now(),
            },
        )
        record_step(conn, p, customer_id, "bank_card", "rail", card=mask(number), bank=bank.code)
        return card_list(conn, customer_id)

    return p.transaction(work)


def _clear_default(conn: sa.Connection, customer_id: int) -> None:
    conn.execute(
        bank_card.update()
        .where(bank_card.c.customer_id == customer_id, bank_card.c.is_default)
        .values(is_default=False)
    )


def _bound_card(conn: sa.Connection, customer_id: int, card_id: int) -> Any:
    row = conn.execute(
        sa.select(bank_card).where(
            bank_card.c.card_id == card_id,
            bank_card.c.customer_id == customer_id,
            bank_card.c.status == "bound",
        )
    ).first()
    if row is None:
        raise NotFound(f"customer {customer_id} has no bound card {card_id}", field="card")
    return row


def set_default_card(p: Platform, customer_id: int, card_id: int) -> dict[str, Any]:
    def work(conn: sa.Connection) -> dict[str, Any]:
        _bound_card(conn, customer_id, card_id)
        _clear_default(conn, customer_id)
        conn.execute(
            bank_card.update().where(bank_card.c.card_id == card_id).values(is_default=True)
        )
        record_step(conn, p, customer_id, "default_card", "form", card_id=card_id)
        return card_list(conn, customer_id)

    return p.transaction(work)


def unbind_card(p: Platform, customer_id: int, card_id: int) -> dict[str, Any]:
    """Refused for the default card while a live loan auto-debits from it."""

    def work(conn: sa.Connection) -> dict[str, Any]:
        card = _bound_card(conn, customer_id, card_id)
        if card.is_default:
            live = conn.execute(
                sa.select(sa.func.count())
                .select_from(loan)
                .where(loan.c.customer_id == customer_id, loan.c.status.in_(LIVE_LOAN))
            ).scalar_one()
            if live:
                raise RuleViolation(
                    f"{live} live loan(s) auto-debit from this card; repay them or choose "
                    "another default card first",
                    code="card.unbind.live_loan",
                    field="card",
                )
        conn.execute(
            bank_card.update()
            .where(bank_card.c.card_id == card_id)
            .values(status="unbound", is_default=False, unbound_at=p.now())
        )
        record_step(conn, p, customer_id, "unbind_card", "form", card=card.card_masked)
        return card_list(conn, customer_id)

    return p.transaction(work)


_BOUND_CARDS = Prepared(
    sa.select(bank_card)
    .where(bank_card.c.customer_id == sa.bindparam("cid"), bank_card.c.status == "bound")
    .order_by(bank_card.c.card_id)
)


def card_list(conn: sa.Connection, customer_id: int) -> dict[str, Any]:
    rows = _BOUND_CARDS.rows(conn, {"cid": customer_id})
    return {
        "customer_id": customer_id,
        "cards": [
            {
                "card_id": r.card_id,
                "card_number": r.card_masked,
                "bank": r.bank_code,
                "card_type": r.card_type,
                "default": bool(r.is_default),
            }
            for r in rows
        ],
    }


def grant_consent(
    p: Platform, customer_id: int, kind: str, *, version: str | None = None, source: str = "form"
) -> dict[str, Any]:
    """Step 4: one separate, versioned, time-stamped consent; only the current version."""
    current = _consent_version(p, kind)
    if version is not None and version != current:
        raise InvalidInput(
            f"consent {kind} is at version {current}, not {version}",
            code="consent.version",
            field="version",
        )

    def work(conn: sa.Connection) -> dict[str, Any]:
        _require_identity(conn, customer_id)
        if live_consent(conn, customer_id, kind) != current:
            conn.execute(
                consent.insert(),
                {
                    "customer_id": customer_id,
                    "kind": kind,
                    "version": current,
                    "source": source,
                    "granted_at": p.now(),
                },
            )
            record_step(conn, p, customer_id, f"consent.{kind}", source, version=current)
        return consent_list(conn, p, customer_id)

    return p.transaction(work)


def withdraw_consent(p: Platform, customer_id: int, kind: str) -> dict[str, Any]:
    _consent_version(p, kind)

    def work(conn: sa.Connection) -> dict[str, Any]:
        _require_identity(conn, customer_id)
        conn.execute(
            consent.update()
            .where(
                consent.c.customer_id == customer_id,
                consent.c.kind == kind,
                consent.c.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=p.now())
        )
        record_step(conn, p, customer_id, f"withdraw.{kind}", "form")
        return consent_list(conn, p, customer_id)

    return p.transaction(work)


def _consent_version(p: Platform, kind: str) -> str:
    versions = p.settings.consent_versions
    if kind not in versions:
        raise InvalidInput(
            f"unknown consent {kind!r}; one of {', '.join(sorted(versions))}",
            code="consent.unknown",
            field="kind",
        )
    return versions[kind]


def live_consent(conn: sa.Connection, customer_id: int, kind: str) -> str | None:
    """The version of the customer's live (granted, not withdrawn) consent of this kind."""
    row = conn.execute(
        sa.select(consent.c.version)
        .where(
            consent.c.customer_id == customer_id,
            consent.c.kind == kind,
            consent.c.withdrawn_at.is_(None),
        )
        .order_by(consent.c.consent_id.desc())
        .limit(1)
    ).first()
    return None if row is None else str(row.version)


_LIVE_CONSENTS = Prepared(
    sa.select(consent.c.kind, consent.c.version)
    .where(consent.c.customer_id == sa.bindparam("cid"), consent.c.withdrawn_at.is_(None))
    .order_by(consent.c.consent_id)
)


def live_consents(conn: sa.Connection, customer_id: int, kinds: Iterable[str]) -> dict[str, str]:
    """``live_consent`` for several kinds in one read: kind → version, for the kinds live."""
    wanted = set(kinds)
    rows = _LIVE_CONSENTS.rows(conn, {"cid": customer_id})  # a customer has a few at most
    return {str(r.kind): str(r.version) for r in rows if r.kind in wanted}  # the latest last


def consent_list(conn: sa.Connection, p: Platform, customer_id: int) -> dict[str, Any]:
    versions = p.settings.consent_versions
    live = live_consents(conn, customer_id, versions)
    out = {
        kind: {"current_version": versions[kind], "granted": live.get(kind) == versions[kind]}
        for kind in sorted(versions)
    }
    return {"customer_id": customer_id, "consents": out}


def require_consents(conn: sa.Connection, p: Platform, customer_id: int, *kinds: str) -> None:
    live = live_consents(conn, customer_id, kinds)
    for kind in kinds:
        check_consent(p, kind, live.get(kind))


def check_consent(p: Platform, kind: str, live_version: str | None) -> None:
    """Refuses unless the customer's live consent of this kind is at the current version."""
    current = p.settings.consent_versions[kind]
    if live_version != current:
        raise RuleViolation(
            f"no live consent {kind} (version {current}) from the customer",
            code=f"consent.{kind}.missing",
            field="consent",
        )


_CHANNELS_OF = Prepared(
    sa.select(channel_identity.c.channel, channel_identity.c.open_id).where(
        channel_identity.c.customer_id == sa.bindparam("cid")
    )
)


def profile(p: Platform, customer_id: int, *, steps: bool = True) -> dict[str, Any]:
    """What onboarding has recorded, masked; its audit trail (``steps``) unless told not to."""

    def work(conn: sa.Connection) -> dict[str, Any]:
        row = _require_identity(conn, customer_id)
        channels = _CHANNELS_OF.rows(conn, {"cid": customer_id})
        trail = (
            conn.execute(
                sa.select(onboarding_step.c.step, onboarding_step.c.source, onboarding_step.c.at)
                .where(onboarding_step.c.customer_id == customer_id)
                .order_by(onboarding_step.c.step_id)
            ).all()
            if steps
            else None
        )
        out = {
            "customer_id": customer_id,
            "name": row.name,
            "id_number": row.id_number_masked,
            "phone": row.phone_masked,
            "channels": [{"channel": c.channel, "open_id": c.open_id} for c in channels],
            **card_list(conn, customer_id),
            **consent_list(conn, p, customer_id),
        }
        if trail is not None:
            out["steps"] = [
                {"step": s.step, "source": s.source, "at": s.at.isoformat()} for s in trail
            ]
        return out

    with p.reading() as conn:
        return work(conn)
