"""``microloan invite``: channels, invitation codes, share invitations and rewards.

The white-list batch over the simulated population's channel users is started elsewhere; it calls
``microloan.service.invitations.run_whitelist``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from microloan.cli.common import AsJson, Database, console, emit, guarded, platform
from microloan.domain.calendar import parse_date
from microloan.errors import InvalidInput
from microloan.service import invitations

invite_app = typer.Typer(help="邀请 Invitations.", no_args_is_help=True)

Channel = Annotated[str, typer.Option("--channel", help="Channel code, e.g. wechat or qq.")]
OpenId = Annotated[str, typer.Option("--open-id", help="The user's open id in the channel.")]


@invite_app.command("channels")
@guarded
def channels_cmd(database: Database = None, as_json: AsJson = False) -> None:
    """渠道 List the channels and their daily invitation quotas."""
    emit(invitations.list_channels(platform(database)), as_json, _print_channels)


def _print_channels(rows: list[dict[str, Any]]) -> None:
    table = Table(title="渠道 Channels")
    for col in ("代码 Code", "名称 Name", "每日邀请额度 Daily quota", "启用 Active"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["code"],
            f"{r['name_zh']} {r['name_en']}",
            str(r["daily_invite_quota"]),
            "是 yes" if r["active"] else "否 no",
        )
    console.print(table)


@invite_app.command("channel-add")
@guarded
def channel_add_cmd(
    code: Annotated[str, typer.Option(help="Code: lower-case letters, digits, _ (2–16).")],
    name_zh: Annotated[str, typer.Option("--name-zh", help="Chinese name.")],
    name_en: Annotated[str, typer.Option("--name-en", help="English name.")],
    quota: Annotated[int, typer.Option(help="Daily white-list invitation quota.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """新增渠道 Add a channel (configuration, not code)."""
    emit(invitations.add_channel(platform(database), code, name_zh, name_en, quota), as_json)


@invite_app.command("check")
@guarded
def check_cmd(
    code: Annotated[str, typer.Argument(metavar="CODE", help="The invitation code to check.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """验证邀请码 Is this invitation official? (Opening is free; never pay anyone to open.)"""
    emit(invitations.check_code(platform(database), code), as_json, _print_check)


def _print_check(answer: dict[str, Any]) -> None:
    verdict = "[green]真 genuine[/green]" if answer["genuine"] else "[red]假 NOT genuine[/red]"
    console.print(f"{answer['code']}: {verdict}")
    console.print(answer["message_zh"], markup=False)
    console.print(answer["message_en"], markup=False)


@invite_app.command("code")
@guarded
def code_cmd(
    channel: Channel, open_id: OpenId, database: Database = None, as_json: AsJson = False
) -> None:
    """我的邀请码 An invited user's personal invitation code."""
    found = invitations.referral_code_of(platform(database), channel, open_id)
    emit({"channel": channel, "open_id": open_id, "referral_code": found}, as_json)


@invite_app.command("enter")
@guarded
def enter_cmd(
    channel: Channel,
    open_id: OpenId,
    code: Annotated[str, typer.Option("--code", help="The inviter's code.")],
    device: Annotated[str | None, typer.Option("--device", help="Device id.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """凭码进入 A new user enters through an invitation code and becomes invited."""
    emit(
        invitations.enter_with_code(platform(database), channel, open_id, code, device_id=device),
        as_json,
    )


@invite_app.command("list")
@guarded
def list_cmd(
    channel: Channel,
    date_: Annotated[
        str | None, typer.Option("--date", help="Business date (default: the open one).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many invitations.")] = 100,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """邀请记录 Batches and invitations of a channel on a business date."""
    day = parse_date(date_, field="date") if date_ else None
    emit(
        invitations.list_invitations(platform(database), channel, day, limit=limit),
        as_json,
        _print_invitations,
    )


def _print_invitations(data: dict[str, Any]) -> None:
    table = Table(title=f"邀请 Invitations — {data['channel']} {data['business_date']}")
    for col in ("#", "Open id", "类型 Kind", "状态 Status", "邀请码 Code", "到期 Expires"):
        table.add_column(col)
    for r in data["invitations"]:
        table.add_row(
            str(r["invitation_id"]),
            r["open_id"],
            r["kind"],
            r["status"],
            r["referral_code"] or "",
            r["expires_on"],
        )
    console.print(table)
    console.print(f"共 total {data['count']} · 显示 shown {len(data['invitations'])}")
    for b in data["batches"]:
        console.print(
            f"批次 batch {b['batch_id']}: seed {b['seed']} · 筛查 screened {b['screened']} · "
            f"合格 eligible {b['eligible']} · 邀请 invited {b['invited']}"
        )


@invite_app.command("rewards")
@guarded
def rewards_cmd(
    customer: Annotated[int | None, typer.Option(help="Customer id (default: all).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rewards.")] = 100,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """红包奖励 Rewards booked for share invitations."""
    if customer is not None and customer <= 0:
        raise InvalidInput("must be a positive id", field="customer")
    emit(invitations.list_rewards(platform(database), customer, limit=limit), as_json)
