"""``microloan onboard``, ``card``, ``consent``, ``operator``, ``proposal`` and the model registry
commands (``model register|activate|list``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from microloan.cli.common import AsJson, Database, emit, guarded, platform, positive_id
from microloan.cli.invite_cmd import invite_app
from microloan.cli.model_cmd import model_app
from microloan.errors import InvalidInput
from microloan.service import blocking, invitations, models, onboarding, operators
from microloan.service.platform import Platform
from microloan.service.providers import channel_candidates

onboard_app = typer.Typer(
    help="开户 Onboarding: identity, phone, cards, consents.", no_args_is_help=True
)
operator_app = typer.Typer(help="操作员 Operators.", no_args_is_help=True)
proposal_app = typer.Typer(help="审批复核 Maker-checker proposals.", no_args_is_help=True)

OperatorName = Annotated[
    str,
    typer.Option(
        "--operator",
        envvar="MICROLOAN_OPERATOR",
        help="Acting operator (password from $MICROLOAN_OPERATOR_PASSWORD or a prompt).",
    ),
]


def acting(p: Platform, username: str) -> operators.Operator:
    password = os.environ.get("MICROLOAN_OPERATOR_PASSWORD")
    if password is None:
        password = typer.prompt(f"密码 Password for {username}", hide_input=True)
    return operators.authenticate(p, username, password)


Customer = Annotated[int, typer.Option("--customer", help="Customer id.")]


@onboard_app.command("identity")
@guarded
def onboard_identity(
    channel: Annotated[str, typer.Option(help="wechat | qq | …")],
    open_id: Annotated[str, typer.Option("--open-id", help="The channel's user id.")],
    name: Annotated[str | None, typer.Option(help="Real name (or from --id-card-image).")] = None,
    id_number: Annotated[str | None, typer.Option("--id-number", help="Identity number.")] = None,
    id_card_image: Annotated[
        Path | None, typer.Option("--id-card-image", help="ID-card photo, read by the OCR port.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device id the user entered on.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """实名认证 Step 1: real name and resident identity number (typed, or from an ID-card photo)."""
    p = platform(database)
    source = "form"
    if id_card_image is not None:
        if not id_card_image.is_file():
            raise InvalidInput(f"no file {id_card_image}", field="id_card_image")
        read_name, read_number = onboarding.read_identity_card(
            p.providers.ocr, id_card_image.read_bytes()
        )
        if name is not None and name.strip() != read_name:
            raise InvalidInput("the name differs from the ID card's", field="name")
        name, id_number, source = read_name, read_number, "ocr"
    if not name:
        raise InvalidInput("give --name or --id-card-image", field="name")
    if not id_number:
        raise InvalidInput("give --id-number or --id-card-image", field="id_number")
    place = p.providers.location.locate(device) if device else None
    emit(
        onboarding.verify_identity(
            p,
            channel_code=channel,
            open_id=open_id,
            name=name,
            id_number=id_number,
            source=source,
            device_id=device,
            location=None if place is None else (place.lat, place.lon),
        ),
        as_json,
    )


@onboard_app.command("phone")
@guarded
def onboard_phone(
    customer: Customer,
    phone: Annotated[str, typer.Option(help="Mainland mobile number.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """手机号 Step 2: the mobile number."""
    emit(
        onboarding.set_phone(platform(database), positive_id(customer, "customer"), phone), as_json
    )


@onboard_app.command("card-bind")
@guarded
def card_bind(
    customer: Customer,
    card_number: Annotated[str, typer.Option("--card-number", help="Bank card number.")],
    default: Annotated[bool, typer.Option("--default", help="Make it the default card.")] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """绑定银行卡 Step 3: bind a card (Luhn, bank from BIN, holder verified by the rail)."""
    p = platform(database)
    emit(
        onboarding.bind_card(
            p,
            positive_id(customer, "customer"),
            card_number,
            rail=p.providers.holder_verification,
            make_default=default,
        ),
        as_json,
    )


@onboard_app.command("card-default")
@guarded
def card_default(
    customer: Customer,
    card: Annotated[int, typer.Option(help="Card id.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """默认卡 Choose the default (auto-debit) card."""
    emit(
        onboarding.set_default_card(
            platform(database), positive_id(customer, "customer"), positive_id(card, "card")
        ),
        as_json,
    )


@onboard_app.command("card-unbind")
@guarded
def card_unbind(
    customer: Customer,
    card: Annotated[int, typer.Option(help="Card id.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """解绑 Unbind a card (refused for the default card while a live loan debits it)."""
    emit(
        onboarding.unbind_card(
            platform(database), positive_id(customer, "customer"), positive_id(card, "card")
        ),
        as_json,
    )


@onboard_app.command("consent")
@guarded
def consent_grant(
    customer: Customer,
    kind: Annotated[str, typer.Option(help="credit_report | sensitive_pi | loan_agreement")],
    version: Annotated[str | None, typer.Option(help="The version shown.")] = None,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw it.")] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """授权 Step 4: grant (or withdraw) one separate, versioned consent."""
    p = platform(database)
    cid = positive_id(customer, "customer")
    if withdraw:
        emit(onboarding.withdraw_consent(p, cid, kind), as_json)
    else:
        emit(onboarding.grant_consent(p, cid, kind, version=version), as_json)


@onboard_app.command("show")
@guarded
def onboard_show(customer: Customer, database: Database = None, as_json: AsJson = False) -> None:
    """客户资料 What onboarding recorded (masked)."""
    emit(onboarding.profile(platform(database), positive_id(customer, "customer")), as_json)


@operator_app.command("add")
@guarded
def operator_add(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[list[str], typer.Option(help=f"One of {', '.join(operators.ROLES)}.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """新增操作员 Add an operator (password from $MICROLOAN_NEW_PASSWORD or a prompt)."""
    password = os.environ.get("MICROLOAN_NEW_PASSWORD") or typer.prompt(
        "新密码 New password", hide_input=True, confirmation_prompt=True
    )
    emit(
        operators.create_operator(platform(database), username, password, role, display_name=name),
        as_json,
    )


@operator_app.command("list")
@guarded
def operator_list(database: Database = None, as_json: AsJson = False) -> None:
    """操作员列表 Operators and their roles."""
    emit(operators.list_operators(platform(database)), as_json)


@proposal_app.command("list")
@guarded
def proposal_list(
    status: Annotated[str | None, typer.Option(help="pending | approved | rejected")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """待审批 Proposals."""
    emit(operators.list_proposals(platform(database), status=status), as_json)


@proposal_app.command("approve")
@guarded
def proposal_approve(
    proposal_id: Annotated[int, typer.Argument(metavar="ID")],
    operator: OperatorName,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead.")] = False,
    note: Annotated[str, typer.Option(help="A note.")] = "",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """复核 Approve (or reject) a proposal; never by the operator who proposed it."""
    p = platform(database)
    op = acting(p, operator)
    emit(
        operators.decide(
            p, op, positive_id(proposal_id, "proposal"), approve=not reject, note=note
        ),
        as_json,
    )


@model_app.command("register")
@guarded
def model_register(
    model: Annotated[Path, typer.Option(help="Directory with scorecard.json.")],
    operator: OperatorName,
    label: Annotated[str, typer.Option(help="What it is, e.g. its data.")] = "",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """登记模型 Register a trained scorecard version."""
    p = platform(database)
    emit(models.register(p, acting(p, operator), model, label=label), as_json)


@model_app.command("activate")
@guarded
def model_activate(
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    operator: OperatorName,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """提议启用 Propose activating a version; another operator approves (`proposal approve`)."""
    p = platform(database)
    emit(models.propose_activation(p, acting(p, operator), version), as_json)


@model_app.command("list")
@guarded
def model_list(database: Database = None, as_json: AsJson = False) -> None:
    """模型版本 Registered versions and which is active."""
    emit(models.list_models(platform(database)), as_json)


@invite_app.command("whitelist")
@guarded
def invite_whitelist(
    channel: Annotated[str, typer.Option(help="wechat | qq | …")],
    seed: Annotated[int, typer.Option(help="Seed of the random sample (reproducible).")],
    quota: Annotated[int | None, typer.Option(help="Invite at most this many today.")] = None,
    population: Annotated[
        Path | None, typer.Option(help="The channel's users (default: the population file).")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """白名单邀请 Pre-screen the channel's users (no credit report) and invite a sample."""
    from microloan.providers.simulated import SimulatedWorld

    p = platform(database)
    world = SimulatedWorld.load(population or Path(p.settings.population_path))
    emit(
        invitations.run_whitelist(
            p, channel, channel_candidates(world, channel), seed=seed, quota=quota
        ),
        as_json,
    )


blocked_app = typer.Typer(help="黑名单 Blocked lists.", no_args_is_help=True)


@blocked_app.command("add")
@guarded
def blocked_add(
    kind: Annotated[str, typer.Option(help="id_number | phone | card | device")],
    value: Annotated[str, typer.Option(help="The value (stored only as a keyed hash).")],
    reason: Annotated[str, typer.Option(help="Why.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """加入黑名单 Block an identity number, phone, card or device."""
    emit(blocking.block(platform(database), [(kind, value)], reason), as_json)
