"""Where an event enters (the webhook route, a source activity), before it is signalled:
bound its attributes, decide it (the trigger's condition and input mapping, within their
budget) and store large data in the database (claim check). The trigger workflow then only
counts, deduplicates and starts: its workflow tasks stay small whatever comes in."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.core.conditions import TriggerInfo
from triggers.core.events import Event, bound_event
from triggers.core.intake import verdicts_for
from triggers.infra import payloads
from triggers.infra.models import Trigger


@dataclass(frozen=True)
class Admission:
    """What deciding an event needs of its trigger (no secrets, no provider config)."""

    trigger_id: str
    name: str
    provider: str
    condition: str | None
    input_mapping: str | None
    config_version: int

    @classmethod
    def of(cls, trigger: Trigger) -> Admission:
        target = trigger.target or {}
        mapping = target.get("input") if target.get("kind") == "workflow" else None
        return cls(
            trigger_id=str(trigger.id),
            name=trigger.name,
            provider=trigger.provider,
            condition=(trigger.condition or {}).get("expression"),
            input_mapping=mapping,
            config_version=trigger.config_version,
        )


async def admit(
    admission: Admission,
    events: list[Event],
    *,
    sessions: async_sessionmaker[AsyncSession],
) -> list[Event]:
    """The events as they are signalled: bounded, with their verdicts, large data (and
    large mapped inputs) replaced by references to the rows this stored."""
    if not events:
        return []
    bounded = [bound_event(e) for e in events]
    info = TriggerInfo(id=admission.trigger_id, name=admission.name, provider=admission.provider)
    verdicts = await verdicts_for(
        admission.condition,
        admission.input_mapping,
        bounded,
        info,
        config_version=admission.config_version,
    )
    decided = [replace(e, verdict=v) for e, v in zip(bounded, verdicts, strict=True)]
    async with sessions() as session:
        return await payloads.offload(session, trigger_id=admission.trigger_id, events=decided)
