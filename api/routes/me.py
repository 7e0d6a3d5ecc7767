"""``/api/me``: the calling user, what their triggers may reach on the network, and the task
queues their triggers may start workflows on."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers
from api.schemas import TaskQueueName
from api.text import NON_BLANK_PATTERN, SafeStr
from api.validation import invalid
from triggers.infra import net, queues
from triggers.infra.models import User
from triggers.providers.base import ProviderConfigError

router = APIRouter(prefix="/api/me", tags=["me"])


class MePublic(BaseModel):
    id: uuid.UUID
    name: str
    network_allowlist: list[str]
    task_queues: list[str] = Field(
        description="Task queues your triggers may start workflows on: claimed or granted."
    )
    claimed_task_queues: list[str] = Field(description="Those of them you claimed yourself.")


class AllowlistIn(BaseModel):
    """Outbound requests of your triggers (polling, SQL) to loopback, private and link-local
    addresses are refused unless allowed here: IPs (``127.0.0.1``), CIDRs (``10.0.0.0/8``),
    host names, or ``file:/absolute/folder`` for SQLite files."""

    model_config = ConfigDict(extra="forbid")

    entries: list[
        Annotated[SafeStr, Field(max_length=1000, json_schema_extra={"pattern": NON_BLANK_PATTERN})]
    ] = Field(max_length=100)


class TaskQueuesIn(BaseModel):
    """The task queues you claim: only your triggers may start workflows on them."""

    model_config = ConfigDict(extra="forbid")

    queues: list[TaskQueueName] = Field(max_length=100)


async def _public(session: SessionDep, user: User) -> MePublic:
    claimed = await queues.claimed(session, user_id=user.id)
    granted = await queues.granted(session, user_id=user.id)
    return MePublic(
        id=user.id,
        name=user.name,
        network_allowlist=list(user.network_allowlist),
        task_queues=sorted(claimed | granted),
        claimed_task_queues=sorted(claimed),
    )


@router.get("", response_model=MePublic, responses=answers(401, 503))
async def me(user: CurrentUser, session: SessionDep) -> MePublic:
    """Who the API key belongs to."""
    return await _public(session, user)


@router.put("/network-allowlist", response_model=MePublic, responses=answers(400, 401, 422, 503))
async def set_network_allowlist(
    body: AllowlistIn, user: CurrentUser, session: SessionDep
) -> MePublic:
    """Replace the list of private addresses, hosts and folders your triggers may reach.
    Running sources pick it up when they next start."""
    for i, entry in enumerate(body.entries):
        try:
            net.Allowlist.parse([entry])
        except ProviderConfigError as exc:
            raise invalid(("body", "entries", i), str(exc)) from None
    user.network_allowlist = [e.strip() for e in body.entries]
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return await _public(session, user)


@router.put(
    "/task-queues",
    response_model=MePublic,
    responses=answers(
        400,
        401,
        409,
        422,
        503,
        d409="A queue another user holds, or one your enabled triggers still target and "
        "this would drop; the detail names it",
    ),
)
async def set_task_queues(
    body: TaskQueuesIn, user: CurrentUser, session: SessionDep, state: StateDep
) -> MePublic:
    """Replace the task queues you claim. A ``workflow`` target or a ``start_workflow``
    node may start workflows only on a queue you claimed or an admin granted you
    (``triggers users grant-queue``). A queue another user claimed (or was granted) is
    refused with 409, so is dropping one that your enabled triggers still target."""
    for i, queue in enumerate(body.queues):
        if queue == state.settings.task_queue:
            raise invalid(("body", "queues", i), "the service's own task queue cannot be claimed")
    try:
        await queues.set_claims(session, user_id=user.id, queues=list(dict.fromkeys(body.queues)))
    except queues.QueueConflict as exc:
        loc: list[str | int] = ["body", "queues"]
        if exc.queue in body.queues:
            loc.append(body.queues.index(exc.queue))
        raise HTTPException(
            status.HTTP_409_CONFLICT, [{"loc": loc, "msg": exc.message, "type": "conflict"}]
        ) from None
    return await _public(session, user)
