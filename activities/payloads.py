"""``load_payload``: a run's large event data, read from the claim-check store by ref.

The result is recorded in the calling workflow's history: call it where the value is
needed, once, and not for values the run never reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from triggers.contracts.names import (
    LOAD_PAYLOAD_ACTIVITY,
    PAYLOAD_MISSING,
    PAYLOAD_TOO_LARGE,
    SPILL_EVENTS_ACTIVITY,
    UNSPILL_EVENTS_ACTIVITY,
)
from triggers.contracts.payloads import LOAD_MAX_RESULT_BYTES, LoadPayloadInput, LoadPayloadResult
from triggers.contracts.trigger import SpillInput, SpillResult, UnspillInput, UnspillResult
from triggers.infra import payloads


class PayloadActivities:
    """Activities with the clients they need, built once by the worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _load(self, ref: str) -> Any:
        try:
            async with self._sessions() as session:
                return await payloads.load(session, ref=ref)
        except payloads.PayloadMissing as exc:
            # Retrying cannot bring a swept row back. The message is the ref only: errors
            # are recorded in history and shown in the Web UI.
            raise ApplicationError(str(exc), type=PAYLOAD_MISSING, non_retryable=True) from None

    @activity.defn(name=LOAD_PAYLOAD_ACTIVITY)
    async def load_payload(self, inp: LoadPayloadInput) -> LoadPayloadResult:
        result = LoadPayloadResult(data=await self._load(inp.ref))
        # Measured as the worker will send it (its converter: JSON with ASCII escapes, so
        # non-ASCII text counts up to three times its UTF-8 size).
        size = activity.payload_converter().to_payload(result).ByteSize()
        if size > LOAD_MAX_RESULT_BYTES:
            raise ApplicationError(
                f"event payload {inp.ref} is {size} bytes as an activity result, over "
                f"{LOAD_MAX_RESULT_BYTES}",
                type=PAYLOAD_TOO_LARGE,
                non_retryable=True,
            )
        return result

    @activity.defn(name=SPILL_EVENTS_ACTIVITY)
    async def spill_events(self, inp: SpillInput) -> SpillResult:
        """Keep a trigger's backlog that is too large to carry in continue-as-new's input."""
        value = [dataclasses.asdict(e) for e in inp.events]
        key = f"spill:{inp.events[0].key if inp.events else ''}:{len(inp.events)}"
        async with self._sessions() as session:
            ref = await payloads.store_value(
                session, trigger_id=inp.trigger_id, key=key, value=value
            )
        return SpillResult(ref=ref)

    @activity.defn(name=UNSPILL_EVENTS_ACTIVITY)
    async def unspill_events(self, inp: UnspillInput) -> UnspillResult:
        data = await self._load(inp.ref)
        converter = activity.payload_converter()
        result: UnspillResult = converter.from_payload(
            converter.to_payload({"events": data}), UnspillResult
        )
        return result
