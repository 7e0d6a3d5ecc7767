"""The figures ``/metrics`` reads from the database at scrape time: triggers by provider
and state, and dead letters waiting, by provider. Two grouped queries, bounded by the
number of providers and states, whatever the number of triggers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.infra.models import DeadLetter, Trigger, TriggerStatus


async def states(session: AsyncSession) -> list[tuple[str, str, int]]:
    """``(provider, state, triggers)``; a disabled trigger's state is ``disabled``."""
    rows = await session.exec(
        select(Trigger.provider, Trigger.status, Trigger.enabled, sa.func.count()).group_by(
            col(Trigger.provider), col(Trigger.status), col(Trigger.enabled)
        )
    )
    out: dict[tuple[str, str], int] = {}
    for provider, status, enabled, count in rows:
        state = str(status) if enabled else TriggerStatus.DISABLED.value
        out[(provider, state)] = out.get((provider, state), 0) + int(count)
    return [(p, s, n) for (p, s), n in sorted(out.items())]


async def dead_letters(session: AsyncSession) -> list[tuple[str, int]]:
    """``(provider, dead letters not redriven)``."""
    rows = await session.exec(
        select(Trigger.provider, sa.func.count())
        .join(DeadLetter, col(DeadLetter.trigger_id) == col(Trigger.id))
        .where(col(DeadLetter.redriven_at).is_(None))
        .group_by(col(Trigger.provider))
    )
    return [(provider, int(count)) for provider, count in rows]
