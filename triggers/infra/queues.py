"""Which task queues a user's triggers may start workflows on.

A queue is allowed to a user who claimed it (one claimer per queue: the claim table's key is
the queue) or to whom an admin granted it (``triggers users grant-queue``). The service's
own queue runs only the built-in run types and is nobody's to claim. Keyword-only arguments
throughout, like ``triggers.infra.store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.infra.models import TaskQueueClaim, TaskQueueGrant, Trigger

Loc = tuple[str | int, ...]


class QueueConflict(Exception):
    """A claim that cannot be made or dropped; the message names the queue."""

    def __init__(self, queue: str, message: str) -> None:
        super().__init__(message)
        self.queue = queue
        self.message = message


@dataclass(frozen=True)
class TargetQueue:
    """A task queue a target starts workflows on; ``None`` is the service's own queue."""

    loc: Loc
    queue: str | None
    what: str  # "the target" or "node 'x'", for messages


def target_queues(target: Mapping[str, Any]) -> list[TargetQueue]:
    """Where a target starts workflows other than the built-in runs: a ``workflow``
    target's queue, and each ``start_workflow`` node's queue in a graph."""
    kind = target.get("kind", "run")
    if kind == "workflow":
        return [TargetQueue(("task_queue",), target.get("task_queue"), "the target")]
    found: list[TargetQueue] = []
    if kind == "graph" and isinstance(target.get("graph"), Mapping):
        for i, node in enumerate(target["graph"].get("nodes") or []):
            if isinstance(node, Mapping) and node.get("type") == "start_workflow":
                where = ("graph", "nodes", i, "task_queue")
                found.append(TargetQueue(where, node.get("task_queue"), f"node {node.get('id')!r}"))
    return found


async def allowed(session: AsyncSession, *, user_id: uuid.UUID) -> set[str]:
    """The queues the user claimed or was granted."""
    return await claimed(session, user_id=user_id) | await granted(session, user_id=user_id)


async def claimed(session: AsyncSession, *, user_id: uuid.UUID) -> set[str]:
    rows = await session.exec(
        select(TaskQueueClaim.task_queue).where(TaskQueueClaim.user_id == user_id)
    )
    return set(rows.all())


async def granted(session: AsyncSession, *, user_id: uuid.UUID) -> set[str]:
    rows = await session.exec(
        select(TaskQueueGrant.task_queue).where(TaskQueueGrant.user_id == user_id)
    )
    return set(rows.all())


async def holders(session: AsyncSession, *, queue: str) -> set[uuid.UUID]:
    """Users who claimed the queue or were granted it."""
    claims = await session.exec(
        select(TaskQueueClaim.user_id).where(TaskQueueClaim.task_queue == queue)
    )
    grants = await session.exec(
        select(TaskQueueGrant.user_id).where(TaskQueueGrant.task_queue == queue)
    )
    return set(claims.all()) | set(grants.all())


async def enabled_triggers_on(
    session: AsyncSession, *, user_id: uuid.UUID, queue: str
) -> list[Trigger]:
    """The user's enabled triggers whose target starts workflows on ``queue``."""
    rows = await session.exec(
        select(Trigger)
        .where(col(Trigger.user_id) == user_id, col(Trigger.enabled).is_(True))
        .order_by(col(Trigger.created_at))
    )
    return [t for t in rows.all() if any(q.queue == queue for q in target_queues(t.target))]


async def set_claims(session: AsyncSession, *, user_id: uuid.UUID, queues: Sequence[str]) -> None:
    """Make the user's claims exactly ``queues``.

    Raises ``QueueConflict`` for a new queue another user claimed or was granted, and for a
    dropped queue that one of the user's enabled triggers still targets (and no grant keeps
    allowed). Nothing changes then."""
    wanted = set(queues)
    have = await claimed(session, user_id=user_id)
    for queue in queues:
        if queue not in have and await holders(session, queue=queue) - {user_id}:
            raise QueueConflict(queue, f"task queue {queue!r} is already claimed by another user")
    kept_by_grant = await granted(session, user_id=user_id)
    for queue in sorted(have - wanted - kept_by_grant):
        if using := await enabled_triggers_on(session, user_id=user_id, queue=queue):
            raise QueueConflict(
                queue,
                f"task queue {queue!r} is still the target of your enabled trigger "
                f"{using[0].name!r} ({using[0].id}); disable it or change its target first",
            )
    for row in (
        await session.exec(select(TaskQueueClaim).where(TaskQueueClaim.user_id == user_id))
    ).all():
        if row.task_queue not in wanted:
            await session.delete(row)
    session.add_all(TaskQueueClaim(task_queue=q, user_id=user_id) for q in wanted - have)
    try:
        await session.commit()
    except IntegrityError:
        # Another user claimed one of them at the same moment: the key refuses the second.
        await session.rollback()
        taken = sorted(wanted - have)
        raise QueueConflict(
            taken[0], f"task queue {taken[0]!r} is already claimed by another user"
        ) from None


async def grant(session: AsyncSession, *, user_id: uuid.UUID, queue: str) -> bool:
    """Allow the user to target ``queue``; False when it was allowed by a grant already."""
    if await session.get(TaskQueueGrant, (queue, user_id)) is not None:
        return False
    session.add(TaskQueueGrant(task_queue=queue, user_id=user_id))
    await session.commit()
    return True


async def revoke(session: AsyncSession, *, user_id: uuid.UUID, queue: str) -> bool:
    """Take the queue from the user (grant and claim). Raises ``QueueConflict`` while one of
    the user's enabled triggers targets it; False when the user did not hold it."""
    if using := await enabled_triggers_on(session, user_id=user_id, queue=queue):
        names = ", ".join(f"{t.name!r} ({t.id})" for t in using)
        raise QueueConflict(queue, f"enabled triggers still target {queue!r}: {names}")
    found = False
    for row in _present(
        await session.get(TaskQueueGrant, (queue, user_id)),
        await session.get(TaskQueueClaim, queue),
    ):
        if isinstance(row, TaskQueueClaim) and row.user_id != user_id:
            continue
        await session.delete(row)
        found = True
    await session.commit()
    return found


def _present(*rows: TaskQueueGrant | TaskQueueClaim | None) -> Iterable[Any]:
    return [r for r in rows if r is not None]
