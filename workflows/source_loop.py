"""The trigger workflow's source loop: runs the provider's activity, parks idle sources on a
durable timer, retries failing ones with backoff, and stops for a config change, a
disable or continue-as-new. Workflow code: deterministic, imported through the sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.names import PROVIDER_CONFIG_ERROR, RUN_SOURCE_ACTIVITY
    from triggers.contracts.source import SourceInput, SourceResult
    from workflows import health, streams

if TYPE_CHECKING:
    from workflows.trigger import TriggerWorkflow

SOURCE_LIFETIME = timedelta(minutes=5)
# The SDK sends heartbeats at most every 0.8 x this; that bounds how fast a dead worker is
# noticed and how fast a cancel reaches the loop (events it sends meanwhile are refused by
# their config version, so a disable takes effect at once regardless).
SOURCE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# The failure type Temporal's core gives an activity a stopping worker did not finish.
WORKER_SHUTDOWN = "WorkerShutdown"
# Seconds: the longest backoff between attempts of a failing source.
SOURCE_BACKOFF_CAP = 300.0


class SourceLoop:
    def __init__(self, wf: TriggerWorkflow) -> None:
        self._wf = wf
        self._handle: ActivityHandle[SourceResult] | None = None
        self._failed_version: int | None = None
        # An activity is running (or being cancelled); the loop itself was started and has
        # not ended (set by the workflow when it spawns the loop).
        self.running = False
        self.alive = False

    def stop(self) -> None:
        """Cancel the running activity (continue-as-new, or a config change)."""
        if self._handle is not None:
            self._handle.cancel()

    restart = stop  # the loop starts it again with the current config, if still enabled

    async def run(self) -> None:
        wf = self._wf
        try:
            while wf.spec.enabled and not wf.state.source_finished and not wf.continuing:
                version = wf.spec.config_version
                if self._failed_version == version:
                    await self._config_change(version)
                    continue
                if wf.state.resume_at and not await self._park(version):
                    continue
                await self._run_once(version)
        finally:
            self.alive = False

    async def _config_change(self, version: int, timeout: timedelta | None = None) -> None:
        wf = self._wf
        await workflow.wait_condition(
            lambda: not wf.spec.enabled or wf.spec.config_version != version or wf.continuing,
            timeout=timeout,
        )

    async def _park(self, version: int) -> bool:
        """Sleep on a durable timer until the source is due again; False if woken early
        by a config change, a disable or continue-as-new."""
        state = self._wf.state
        assert state.resume_at is not None
        delay = datetime.fromisoformat(state.resume_at) - workflow.now()
        if delay.total_seconds() > 0:
            try:
                await self._config_change(version, timeout=delay)
                if not self._wf.continuing:
                    state.resume_at = None
                return False
            except TimeoutError:
                pass
        state.resume_at = None
        return True

    async def _run_once(self, version: int) -> None:
        state = self._wf.state
        if state.status == "failed":
            # That failure belonged to an older config.
            state.status, state.last_error = "active", None
        self.running = True
        start_to_close = SOURCE_LIFETIME + timedelta(minutes=2)
        stream = self._wf.spec.stream and workflow.patched(streams.LONG_LIVED_PATCH)
        if stream:
            # A push stream keeps its connection until cancelled, not for a lifetime.
            start_to_close = timedelta(days=streams.STREAM_START_TO_CLOSE_DAYS)
            streams.connecting(state)
        self._handle = workflow.start_activity(
            RUN_SOURCE_ACTIVITY,
            SourceInput(
                trigger_id=self._wf.spec.trigger_id,
                config_version=version,
                # Every emit and checkpoint signals its cursor, so this is the newest one.
                cursor=state.cursor,
                lifetime_seconds=SOURCE_LIFETIME.total_seconds(),
                recovering=state.status == "degraded",
            ),
            result_type=SourceResult,
            start_to_close_timeout=start_to_close,
            # Always set a heartbeat timeout on a long-running activity: it is how a dead
            # worker is noticed and how cancellation reaches the activity.
            heartbeat_timeout=SOURCE_HEARTBEAT_TIMEOUT,
            # This workflow retries, not the server: a new attempt then starts from the
            # workflow's cursor, and errors and backoff are visible in its state.
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="source loop",
        )
        try:
            result = await self._handle
        except ActivityError as err:
            cause = err.cause
            if stream:
                streams.set_state(
                    state, "stopped" if isinstance(cause, CancelledError) else "reconnecting"
                )
            if isinstance(cause, CancelledError):
                return
            if (
                isinstance(cause, ApplicationError)
                and cause.type == WORKER_SHUTDOWN
                and workflow.patched("worker-shutdown-retries-at-once")
            ):
                # The worker stopped before the loop could return (past its grace): not a
                # source error; the next attempt starts at once, on a worker that runs.
                return
            if isinstance(cause, ApplicationError) and cause.type == PROVIDER_CONFIG_ERROR:
                state.status = "failed"
                state.last_error = cause.message
                self._failed_version = version
                return
            await self._retry_later(version, cause or err)
            return
        finally:
            self._handle = None
            self.running = False
        if stream:
            streams.set_state(state, "stopped")
        if version != self._wf.spec.config_version or not self._wf.spec.enabled:
            return  # a result of an older config: its cursor was not accepted either
        if result.cursor is not None:
            health.move_cursor(state, result.cursor)
        state.next_at = None if result.finished else result.next_at
        state.resume_at = result.resume_at
        state.status = "finished" if result.finished else "active"
        state.last_error = None
        state.consecutive_errors = 0
        state.source_finished = result.finished

    def recovered(self) -> None:
        """The source's activity says it runs fine again after an error."""
        state = self._wf.state
        if state.status == "degraded":
            state.status, state.last_error = "active", None
            state.consecutive_errors = 0
            state.next_retry_at = None

    async def _retry_later(self, version: int, error: BaseException) -> None:
        """Transient failure (or a dead worker): capped exponential backoff with jitter, or
        the source's own Retry-After; a config change or a disable cuts the wait short."""
        state = self._wf.state
        state.consecutive_errors += 1
        health.source_retry(state)  # its next attempt is a reconnect
        state.status = "degraded"
        state.last_error = (
            error.message if isinstance(error, ApplicationError | ActivityError) else str(error)
        ) or type(error).__name__
        hinted = error.next_retry_delay if isinstance(error, ApplicationError) else None
        if hinted is None:
            ceiling = min(SOURCE_BACKOFF_CAP, 2.0 ** (state.consecutive_errors - 1))
            hinted = timedelta(seconds=ceiling * (0.5 + 0.5 * workflow.random().random()))
        state.next_retry_at = (workflow.now() + hinted).isoformat()
        try:
            await self._config_change(version, timeout=hinted)
        except TimeoutError:
            pass
        state.next_retry_at = None
