"""The generic source loop: runs any provider as its trigger workflow's activity.

The activity loads the trigger's config and decrypted secrets from the database itself
(never from workflow input), resumes from its heartbeat details, heartbeats while the
source is idle, signals events to its trigger workflow in batches, and moves its cursor
(the heartbeat) only after the signal carrying those events is persisted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from triggers import store
from triggers.crypto import SecretBox
from triggers.events import Event, EventBatch, trigger_workflow_id
from triggers.models import TriggerStatus
from triggers.providers import UnknownProvider, get_provider
from triggers.providers.base import (
    Cursor,
    ProviderConfigError,
    ProviderTransientError,
    SourceContext,
    SourceStop,
)
from triggers.sources import CONFIG_ERROR, TRANSIENT_ERROR, SourceInput, SourceResult

log = logging.getLogger("triggers.source")

# Events per signal, and their approximate bytes: Temporal payloads stay small.
MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 512 * 1024


class _Park(SourceStop):
    def __init__(self, resume_at: datetime) -> None:
        super().__init__()
        self.resume_at = resume_at


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Capped exponential backoff with full jitter, for retry ``attempt`` (1 = first retry)."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2.0 ** max(0, attempt - 1))


class ActivitySink:
    """The EventSink a provider's ``run`` talks to inside the activity."""

    def __init__(
        self,
        client: Client,
        *,
        trigger_id: str,
        cursor: Cursor,
        lifetime: float,
        park_after: float,
        lead: float = 5.0,
    ) -> None:
        self._client = client
        self._workflow_id = trigger_workflow_id(trigger_id)
        self._cursor = cursor
        self._deadline = time.monotonic() + lifetime
        self._park_after = park_after
        self._lead = lead
        self.events = 0
        self.next_at: datetime | None = None
        self.emitted_once = False
        # Set once the provider started fine in this attempt: the API then stops showing
        # the earlier attempts' errors.
        self.healthy_attempt: int | None = None

    @property
    def cursor(self) -> Cursor:
        return self._cursor

    def details(self) -> dict[str, Any]:
        return {
            "cursor": self._cursor,
            "next_at": self.next_at.isoformat() if self.next_at else None,
            "events": self.events,
            "healthy_attempt": self.healthy_attempt,
        }

    def heartbeat(self) -> None:
        activity.heartbeat(self.details())

    async def emit(self, events: Sequence[Event], *, cursor: Cursor = None) -> None:
        for batch in _batches(list(events)):
            # Persisted when this returns: only then may the cursor move past these events.
            await self._client.get_workflow_handle(self._workflow_id).signal(
                "events", EventBatch(batch, cursor=cursor)
            )
            self.events += len(batch)
        self.emitted_once = True
        if cursor is not None:
            await self.checkpoint(cursor)
        if time.monotonic() >= self._deadline:
            raise SourceStop

    async def checkpoint(self, cursor: Cursor) -> None:
        self._cursor = cursor
        self.heartbeat()

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        self.next_at = next_at or (self.now() + timedelta(seconds=seconds))
        self.heartbeat()
        if seconds > self._park_after:
            raise _Park(self.now() + timedelta(seconds=seconds - self._lead))
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise SourceStop
        await asyncio.sleep(min(seconds, remaining))
        if seconds > remaining:
            raise SourceStop

    def now(self) -> datetime:
        return datetime.now(UTC)


def _batches(events: list[Event]) -> list[list[Event]]:
    out: list[list[Event]] = []
    size = 0
    for event in events:
        approx = len(repr(event.data)) + 256
        if not out or len(out[-1]) >= MAX_BATCH_EVENTS or size + approx > MAX_BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(event)
        size += approx
    return out


class SourceActivities:
    """Activities with the clients they need, built once by the worker."""

    def __init__(
        self,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        secret_box: SecretBox | None,
        *,
        heartbeat_every: float = 2.0,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._box = secret_box
        self._heartbeat_every = heartbeat_every

    async def _set_status(self, trigger_id: str, status: TriggerStatus, error: str | None) -> None:
        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(trigger_id))
            if trigger is None or (trigger.status == status and trigger.last_error == error):
                return
            trigger.status = status
            trigger.last_error = error
            await store.save(session, trigger=trigger)

    @activity.defn(name="run_source")
    async def run_source(self, inp: SourceInput) -> SourceResult:
        info = activity.info()
        cursor = inp.cursor
        if info.heartbeat_details:
            # A retry: resume from the last cursor this activity recorded.
            details = info.heartbeat_details[0]
            if isinstance(details, dict) and "cursor" in details:
                cursor = details["cursor"]
        if info.attempt > 1:
            # Jitter on top of the server's backoff, so failed triggers do not retry in step.
            await asyncio.sleep(random.uniform(0, min(5.0, info.attempt)))

        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(inp.trigger_id))
        if trigger is None or not trigger.enabled:
            return SourceResult(cursor=cursor, events=0, finished=True)
        try:
            provider_info = get_provider(trigger.provider)
            if provider_info.source is None:
                raise ProviderConfigError(f"provider {trigger.provider!r} has no source loop")
            config = provider_info.config_model.model_validate(trigger.config)
        except (UnknownProvider, ValidationError, ProviderConfigError) as exc:
            await self._fail(inp.trigger_id, _describe(exc))
        secrets = self._box.decrypt(trigger.secrets_encrypted) if self._box else {}
        context = SourceContext(
            trigger_id=inp.trigger_id,
            trigger_name=trigger.name,
            owner=str(trigger.user_id),
            network_allowlist=tuple(trigger.config.get("network_allowlist", ()) or ()),
        )
        sink = ActivitySink(
            self._client,
            trigger_id=inp.trigger_id,
            cursor=cursor,
            lifetime=inp.lifetime_seconds,
            park_after=inp.park_after_seconds,
        )
        provider = provider_info.source()
        beat = asyncio.create_task(self._beat(sink))
        finished = False
        resume_at: datetime | None = None
        try:
            await provider.init(config, secrets, context)
            # Clears a failed or degraded status left by an earlier config or attempt.
            await self._set_status(inp.trigger_id, TriggerStatus.ACTIVE, None)
            sink.healthy_attempt = info.attempt
            sink.heartbeat()
            try:
                await provider.run(sink)
                finished = True
            except _Park as park:
                resume_at = park.resume_at
            except SourceStop:
                pass
        except ProviderConfigError as exc:
            await self._fail(inp.trigger_id, _describe(exc, secrets))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Anything else may pass: the server retries with capped backoff; shown as degraded.
            message = _describe(exc, secrets)
            log.warning("source %s: %s (attempt %d)", inp.trigger_id, message, info.attempt)
            await self._set_status(inp.trigger_id, TriggerStatus.DEGRADED, message)
            delay = getattr(exc, "retry_after", None) or backoff(info.attempt)
            raise ApplicationError(
                message,
                sink.details(),
                type=TRANSIENT_ERROR,
                next_retry_delay=timedelta(seconds=delay),
            ) from None
        finally:
            beat.cancel()
            try:
                await provider.shutdown()
            except Exception as exc:  # a failing shutdown must not hide the real outcome
                log.warning(
                    "source %s: shutdown failed: %s", inp.trigger_id, _describe(exc, secrets)
                )
        return SourceResult(
            cursor=sink.cursor,
            events=sink.events,
            finished=finished,
            resume_at=resume_at.isoformat() if resume_at else None,
            next_at=sink.next_at.isoformat() if sink.next_at else None,
        )

    async def _fail(self, trigger_id: str, message: str) -> NoReturn:
        await self._set_status(trigger_id, TriggerStatus.FAILED, message)
        raise ApplicationError(message, type=CONFIG_ERROR, non_retryable=True)

    async def _beat(self, sink: ActivitySink) -> None:
        # Cancellation only reaches an activity that heartbeats; idle sources must too.
        while True:
            sink.heartbeat()
            await asyncio.sleep(self._heartbeat_every)


def _describe(exc: BaseException, secrets: dict[str, str] | None = None) -> str:
    """A message for users and logs: never a secret, even one a library echoed."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid config: {where}: {first['msg']}"
    if isinstance(exc, UnknownProvider):
        return f"unknown provider {exc.args[0]!r}"
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, ProviderConfigError | ProviderTransientError):
        text = f"{type(exc).__name__}: {text}"
    for value in (secrets or {}).values():
        if value:
            text = text.replace(value, "***")
    return text[:500]
