"""The access half of the demo: a synthetic population behind the providers, two operators who
activate the demo scorecard (maker-checker), a white-list batch, invited users onboarding and
applying, and one share invitation that earns rewards.

The demo scorecard ships in ``microloan/decisions/demo_model``: it was trained on the synthetic
population's own history (``population generate --size 20000 --seed 1``, ``population
history``, ``model train``) and says so in its label. It is not a model of real borrowers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from microloan.errors import MicroloanError
from microloan.providers.simulated import SimulatedWorld
from microloan.service import decisions, invitations, models, onboarding, operators
from microloan.service.platform import Platform
from microloan.service.providers import channel_candidates, from_world
from microloan.sim import population
from microloan.store.schema import invitation

DEMO_MODEL = Path(__file__).parents[1] / "decisions" / "demo_model"
DEMO_MODEL_LABEL = (
    "演示模型：在模拟人群上训练（种子 1，20,000 人），不是真实借款人 · Demo scorecard trained on "
    "the synthetic population (seed 1, 20,000 people), not on real borrowers"
)
DEMO_POPULATION = (5_000, 1)  # size, seed when no population file exists yet
# demo-only operator accounts, for the embedded database; never use these anywhere else. The
# two risk analysts activate the demo model (maker, checker); the others show the console's
# pages for their roles (the administrator sees every page)
DEMO_OPERATORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("risk_maker", "风控 提议人", ("risk_analyst",)),
    ("risk_checker", "风控 复核人", ("risk_analyst",)),
    ("demo_admin", "演示 管理员", ("administrator",)),
    ("demo_auditor", "演示 审计", ("auditor",)),
    ("demo_finance", "演示 财务", ("finance",)),
)
DEMO_PASSWORD = "demo-only-2026"
APPLICANTS = 6


def ensure_population(p: Platform) -> SimulatedWorld:
    path = Path(p.settings.population_path)
    if not path.is_file():
        size, seed = DEMO_POPULATION
        population.write(population.generate(size, seed), path)
    world = SimulatedWorld.load(path)
    p.use_providers(from_world(world))
    return world


def activate_demo_model(p: Platform) -> str:
    for username, name, roles in DEMO_OPERATORS:
        operators.create_operator(p, username, DEMO_PASSWORD, list(roles), display_name=name)
    maker, checker = (
        operators.authenticate(p, u, DEMO_PASSWORD) for u in ("risk_maker", "risk_checker")
    )
    version = str(models.register(p, maker, DEMO_MODEL, label=DEMO_MODEL_LABEL)["version"])
    proposal = models.propose_activation(p, maker, version)["proposal_id"]
    operators.decide(p, checker, proposal, approve=True, note="demo")
    return version


def onboard_person(p: Platform, world: SimulatedWorld, channel: str, open_id: str) -> int:
    """Everything an invited user does before applying, from their synthetic record."""
    person = world.person_by_open_id(channel, open_id)
    assert person is not None
    place = world.location.locate(person.device_id)
    cid = int(
        onboarding.verify_identity(
            p,
            channel_code=channel,
            open_id=open_id,
            name=person.name,
            id_number=person.id_number,
            device_id=person.device_id,
            location=None if place is None else (place.lat, place.lon),
        )["customer_id"]
    )
    onboarding.set_phone(p, cid, person.phone)
    onboarding.bind_card(p, cid, person.card_number, rail=world.holder_verification)
    for kind in sorted(p.settings.consent_versions):
        onboarding.grant_consent(p, cid, kind)
    return cid


def load_access_demo(p: Platform) -> dict[str, Any]:
    world = ensure_population(p)
    version = activate_demo_model(p)
    batch = invitations.run_whitelist(
        p, "wechat", channel_candidates(world, "wechat"), seed=1, quota=40
    )
    with p.engine.connect() as conn:
        invited = [
            str(open_id)
            for open_id in conn.execute(
                sa.select(invitation.c.open_id)
                .where(invitation.c.batch_id == batch["batch_id"])
                .order_by(invitation.c.invitation_id)
            ).scalars()
        ]
    outcomes = []
    for open_id in invited[:APPLICANTS]:
        cid = onboard_person(p, world, "wechat", open_id)
        outcomes.append(decisions.apply(p, cid, "wechat"))
    referral = _share_invitation(p, world, invited, outcomes)
    review = None if referral is None else _held_for_review(p, world, referral["code"])
    return {
        "model_version": version,
        "invited": batch["invited"],
        "decisions": outcomes,
        "referral": referral,
        "review": review,
    }


REVIEW_TRIES = 200  # people of the population looked at for the demo's manual review


def _held_for_review(p: Platform, world: SimulatedWorld, code: str) -> dict[str, Any] | None:
    """A friend on a rooted phone, otherwise a good risk, enters with the shared code and
    applies: the decision holds the application for a person, so the console's review queue
    has a case to decide."""
    for row in world.rows("wechat")[: REVIEW_TRIES * 20]:
        person, device = world.person_at(row), world.device_at(row)
        open_id = person.open_id("wechat")
        if (
            open_id is None
            or not device.rooted
            or device.emulator
            or person.blocked
            or person.fraud_ring is not None
            or len(world.people_on_device(person.device_id)) > 1
        ):
            continue
        try:
            invitations.enter_with_code(p, "wechat", open_id, code, device_id=person.device_id)
        except MicroloanError:
            continue  # already invited, or known to the platform
        cid = onboard_person(p, world, "wechat", open_id)
        answer = decisions.apply(p, cid, "wechat", device_id=person.device_id)
        if answer["outcome"] == "review":
            return {"customer_id": cid, "decision": answer}
    return None


def _share_invitation(
    p: Platform, world: SimulatedWorld, invited: list[str], outcomes: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """An approved customer shares their code; a friend enters with it, onboards, applies."""
    approved = [i for i, o in enumerate(outcomes) if o["approved"]]
    if not approved:
        return None
    code = invitations.referral_code_of(p, "wechat", invited[approved[0]])
    taken = set(invited)
    for person in world.people("wechat"):
        open_id = person.open_id("wechat")
        if open_id in taken or open_id is None:
            continue
        try:
            invitations.enter_with_code(p, "wechat", open_id, code, device_id=person.device_id)
        except MicroloanError:
            continue  # already invited, or known to the platform: try the next friend
        cid = onboard_person(p, world, "wechat", open_id)
        answer = decisions.apply(p, cid, "wechat")
        if answer["approved"]:
            return {"code": code, "customer_id": cid, "decision": answer}
    return {"code": code, "customer_id": None, "decision": None}
