"""The generic source loop: runs any provider as its trigger workflow's activity.

The activity loads the trigger's config and decrypted secrets from the database itself
(never from workflow input), resumes from its heartbeat details, heartbeats while the
source is idle, signals events to its trigger workflow in batches, and moves its cursor
(the heartbeat) only after the signal carrying those events is persisted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NoReturn

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.pull_sink import ActivitySink, Park, WorkerStopping, until_worker_stops
from activities.signalling import describe
from activities.stream import Limits, StreamRuntime
from activities.stream_activity import run_stream
from triggers.contracts.names import (
    PROVIDER_CONFIG_ERROR,
    PROVIDER_TRANSIENT_ERROR,
    RUN_SOURCE_ACTIVITY,
)
from triggers.contracts.source import SourceInput, SourceResult
from triggers.core.events import Event
from triggers.infra import logs, redaction, store
from triggers.infra.admission import Admission, admit
from triggers.infra.crypto import SecretBox
from triggers.infra.metrics import Metrics
from triggers.infra.models import Trigger, TriggerStatus, User
from triggers.providers import UnknownProvider, get_provider
from triggers.providers.base import (
    ProviderConfigError,
    SourceContext,
    SourceProvider,
    SourceStop,
)
from triggers.providers.stream import StreamProvider

log = logging.getLogger("triggers.source")


class SourceActivities:
    """Activities with the clients they need, built once by the worker."""

    def __init__(
        self,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        secret_box: SecretBox | None,
        *,
        heartbeat_every: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._box = secret_box
        self._heartbeat_every = heartbeat_every
        self._metrics = metrics or Metrics()

    async def _set_status(self, trigger_id: str, status: TriggerStatus, error: str | None) -> None:
        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(trigger_id))
            if trigger is None or (trigger.status == status and trigger.last_error == error):
                return
            if trigger.status != status:
                logs.source_state(log, trigger_id, trigger.provider, str(status), trigger.status)
            trigger.status = status
            trigger.last_error = error
            await store.save(session, trigger=trigger)

    @activity.defn(name=RUN_SOURCE_ACTIVITY)
    async def run_source(self, inp: SourceInput) -> SourceResult:
        cursor = inp.cursor

        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(inp.trigger_id))
            owner = await session.get(User, trigger.user_id) if trigger else None
            allowlist = await network_allowlist(session, trigger) if trigger else ()
        if trigger is None or owner is None or not trigger.enabled:
            return SourceResult(cursor=cursor, events=0, finished=True)
        try:
            provider_info = get_provider(trigger.provider)
            if provider_info.source is None:
                raise ProviderConfigError(f"provider {trigger.provider!r} has no source loop")
            config = provider_info.config_model.model_validate(trigger.config)
        except (UnknownProvider, ValidationError, ProviderConfigError) as exc:
            await self._fail(inp.trigger_id, describe(exc))
        secrets = self._box.decrypt(trigger.secrets_encrypted) if self._box else {}
        # Every log line of this process masks these while the loop holds them.
        if inp.recovering:
            self._metrics.reconnected(trigger.provider, inp.trigger_id)
        loop = self._metrics.source_loop(trigger.provider, inp.trigger_id)
        with redaction.hold(secrets.values()), loop:
            return await self._run(inp, trigger, provider_info.source, config, secrets, allowlist)

    async def _run(
        self,
        inp: SourceInput,
        trigger: Trigger,
        source: type[SourceProvider],
        config: BaseModel,
        secrets: dict[str, str],
        allowlist: tuple[str, ...],
    ) -> SourceResult:
        """The provider's life (init, run, shutdown) and how it ended, as a result or an
        error for the workflow. Push streams are run by the stream runtime."""
        context = SourceContext(
            trigger_id=inp.trigger_id,
            trigger_name=trigger.name,
            owner=str(trigger.user_id),
            network_allowlist=allowlist,
        )
        admission = Admission.of(trigger)
        provider = source()

        def accepted(events: int) -> None:
            self._metrics.received(trigger.provider, inp.trigger_id, events)

        try:
            if isinstance(provider, StreamProvider):

                async def start() -> None:
                    assert isinstance(provider, StreamProvider)
                    provider.configure(config, context)  # the SDK's no-I/O step, first
                    await provider.init(config, secrets, context)

                runtime = StreamRuntime(
                    self._client,
                    self._sessions,
                    provider,
                    trigger_id=inp.trigger_id,
                    config_version=inp.config_version,
                    admission=admission,
                    limits=Limits.of(provider, config),
                    secrets=secrets,
                    on_accepted=accepted,
                    on_health=self._metrics.stream_observer(trigger.provider, inp.trigger_id),
                )
                return await run_stream(
                    runtime,
                    init=start,
                    connected=lambda: self._set_status(inp.trigger_id, TriggerStatus.ACTIVE, None),
                    heartbeat_every=self._heartbeat_every,
                )
            return await self._pull(inp, provider, admission, config, secrets, context, accepted)
        except ProviderConfigError as exc:
            await self._fail(inp.trigger_id, describe(exc, secrets))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Anything else may pass: the server retries with capped backoff; shown as degraded.
            message = describe(exc, secrets)
            log.warning("source %s: %s", inp.trigger_id, message)
            await self._set_status(inp.trigger_id, TriggerStatus.DEGRADED, message)
            # The workflow retries with backoff; a source's own Retry-After comes first.
            retry_after = getattr(exc, "retry_after", None)
            raise ApplicationError(
                message,
                type=PROVIDER_TRANSIENT_ERROR,
                next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
            ) from None
        finally:
            try:
                await provider.shutdown()
            except Exception as exc:  # a failing shutdown must not hide the real outcome
                log.warning(
                    "source %s: shutdown failed: %s", inp.trigger_id, describe(exc, secrets)
                )

    async def _pull(
        self,
        inp: SourceInput,
        provider: SourceProvider,
        admission: Admission,
        config: BaseModel,
        secrets: dict[str, str],
        context: SourceContext,
        accepted: Callable[[int], None],
    ) -> SourceResult:
        """A pull provider's run, through the ``ActivitySink``."""

        async def admit_events(events: list[Event]) -> list[Event]:
            return await admit(admission, events, sessions=self._sessions)

        sink = ActivitySink(
            self._client,
            trigger_id=inp.trigger_id,
            cursor=inp.cursor,
            lifetime=inp.lifetime_seconds,
            park_after=inp.park_after_seconds,
            config_version=inp.config_version,
            admit=admit_events,
            on_accepted=accepted,
            provider=provider.name,
        )
        beat = asyncio.create_task(self._beat(sink))
        finished = stopping = False
        resume_at: datetime | None = None
        try:
            await provider.init(config, secrets, context)
            # Clears a failed or degraded status left by an earlier config or attempt.
            await self._set_status(inp.trigger_id, TriggerStatus.ACTIVE, None)
            if inp.recovering:
                # The workflow shows the source as degraded until it hears it runs again.
                await sink.report_recovered()
            sink.heartbeat()
            try:
                await until_worker_stops(provider.run(sink))
                finished = True
                await self._set_status(inp.trigger_id, TriggerStatus.FINISHED, None)
            except WorkerStopping:
                stopping = True
            except Park as park:
                resume_at = park.resume_at
            except SourceStop:
                pass
        finally:
            beat.cancel()
        return SourceResult(
            # Stopped mid-way, the sink's copy may lag the last signal's: the workflow's own
            # cursor (every signal carries one) is the one to resume from.
            cursor=None if stopping else sink.cursor,
            events=sink.events,
            finished=finished,
            resume_at=resume_at.isoformat() if resume_at else None,
            next_at=sink.next_at.isoformat() if sink.next_at else None,
        )

    async def _fail(self, trigger_id: str, message: str) -> NoReturn:
        await self._set_status(trigger_id, TriggerStatus.FAILED, message)
        # ``from None``: called inside ``except`` blocks, and the SDK would otherwise send the
        # caught exception (a driver's error may quote a password) along as the cause.
        raise ApplicationError(message, type=PROVIDER_CONFIG_ERROR, non_retryable=True) from None

    async def _beat(self, sink: ActivitySink) -> None:
        # Cancellation only reaches an activity that heartbeats; idle sources must too.
        while True:
            sink.heartbeat()
            await asyncio.sleep(self._heartbeat_every)


async def network_allowlist(session: AsyncSession, trigger: Trigger) -> tuple[str, ...]:
    """The allowlist of the user who last chose where the trigger connects (its network
    principal), never simply the owner's: an editor's destination goes through the
    editor's allowlist. A principal that no longer exists allows public addresses only."""
    if trigger.network_principal_id is None:
        return ()
    principal = await session.get(User, trigger.network_principal_id)
    return tuple(principal.network_allowlist) if principal else ()
