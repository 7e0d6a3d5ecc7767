"""Who may point a trigger where: secrets stay bound to the destinations their owner chose,
and workflows start only on task queues the trigger's owner may use."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.validation import invalid
from triggers.core import graph_destinations
from triggers.infra import queues
from triggers.infra.models import Trigger
from triggers.providers import ProviderInfo


def changed_destinations(info: ProviderInfo, trigger: Trigger, config: BaseModel) -> list[str]:
    """The provider's destination fields that ``config`` changes on ``trigger``. A stored
    config that no longer validates counts as changed everywhere."""
    try:
        before = info.config_model.model_validate(trigger.config)
    except ValidationError:
        return list(info.destinations(config))
    return info.changed_destinations(before, config)


def require_secrets_again(
    changed: Sequence[str], *, kept: Collection[str], resupplied: Collection[str]
) -> None:
    """Someone other than the owner changes where the secrets go: every secret the trigger
    keeps must be given again in the same request, or the change is refused (403)."""
    missing = sorted(set(kept) - set(resupplied))
    if not changed or not missing:
        return
    field = changed[0]
    msg = (
        f"config.{field} decides where this trigger's secrets are sent: only its owner may "
        f"change it without them; give {', '.join(missing)} again in secrets (or remove "
        "them with null) in the same request"
    )
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        [{"loc": ["body", "config", field], "msg": msg, "type": "secrets_required"}],
    )


def target_principal(
    trigger: Trigger,
    *,
    target: Mapping[str, Any],
    name: str,
    actor_id: uuid.UUID,
    chooses_events: bool,
) -> uuid.UUID | None:
    """Whose network allowlist the graph's ``http_request`` nodes go through after this
    change: the actor's when it changes where they send requests (the owner's again when the
    owner does), or when an editor chooses the events (``chooses_events``: a source's
    destination or a secret given) that a URL is built from; else unchanged."""
    before = graph_destinations.destinations(trigger.target, trigger_name=trigger.name)
    after = graph_destinations.destinations(target, trigger_name=name)
    if graph_destinations.moved(before, after):
        return actor_id
    if actor_id != trigger.user_id and chooses_events and graph_destinations.reads_events(target):
        return actor_id
    return trigger.target_principal_id


async def authorize_target(
    session: AsyncSession,
    *,
    target: Mapping[str, Any],
    owner_id: uuid.UUID,
    actor_id: uuid.UUID,
    service_queue: str,
    before: Mapping[str, Any] | None = None,
    loc: Sequence[str | int] = ("body", "target"),
) -> None:
    """422 naming the field when the target starts workflows on a queue the trigger's owner
    may not use (or, for a queue an editor puts there, the editor may not use). The
    service's own queue runs only the built-in run types (kinds ``run`` and ``graph``)."""
    wanted = queues.target_queues(target)
    if not wanted:
        return
    earlier = {q.queue for q in queues.target_queues(before or {})}
    owner_may = await queues.allowed(session, user_id=owner_id)
    actor_may = owner_may if actor_id == owner_id else None
    for item in wanted:
        where = (*loc, *item.loc)
        if item.queue is None or item.queue == service_queue:
            raise invalid(
                where,
                f"{item.what}: the service's own task queue runs only the built-in run types; "
                "name a task queue of yours",
                "task_queue_not_allowed",
            )
        if item.queue not in owner_may:
            raise invalid(
                where,
                f"{item.what}: task queue {item.queue!r} is not allowed for the trigger's "
                "owner: claim it with PUT /api/me/task-queues or ask an admin to grant it",
                "task_queue_not_allowed",
            )
        if item.queue not in earlier and actor_id != owner_id:
            if actor_may is None:
                actor_may = await queues.allowed(session, user_id=actor_id)
            if item.queue not in actor_may:
                raise invalid(
                    where,
                    f"{item.what}: task queue {item.queue!r} is not allowed for you",
                    "task_queue_not_allowed",
                )
