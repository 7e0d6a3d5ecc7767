"""The provider conformance suite (issue 10): one abstract test class per kind of source,
which each provider's tests subclass with a few hooks that know how to reach its server.

- ``SourceConformance``: every source provider (pull ones: cron, http_poll, sql_poll):
  secret-free config errors, shutdown always called, resume from the cursor.
- ``StreamConformance``: push streams, run by the stream runtime, adding the runtime's
  guarantees: ack after accept (also on disable, config change and worker stop), the exact
  prefix on a failed signal, a stop reaching a blocked receive within 2 s, at most
  ``max_in_flight`` unacked, poison messages to one dead letter each while the next flow,
  and no second run for a redelivered message.

Not a test module: test modules subclass these classes (pytest collects the inherited
cases there). The provider under test is wrapped by ``instrumented`` (counts its inits,
shutdowns, receives and acks) and registered in-process under ``<name>_conformance``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus

from tests.conformance_rig import Rig, Workers, instrumented, probe, run_keys, source_beat
from tests.conftest import eventually, make_stack
from tests.helpers import runs_of, status_of
from triggers.contracts.names import SNAPSHOT_QUERY
from triggers.contracts.trigger import TriggerState
from triggers.core.events import trigger_workflow_id
from triggers.infra.settings import Settings
from triggers.providers.base import SourceProvider

# A stop must reach a receive that blocks (issue 10, guarantee 3).
STOP_WITHIN = 2.0


class SourceConformance:
    """Cases every source provider passes. Hooks: ``provider`` (the class under test),
    ``config``, ``secrets``, ``bad_config``, ``produce``; optionally ``setup_source`` and
    ``teardown_source`` around each case."""

    provider: ClassVar[type[SourceProvider]]
    # Set by __init_subclass__: the instrumented provider's registered name.
    provider_name: ClassVar[str]
    # Seconds the cases wait for runs.
    timeout: ClassVar[float] = 60.0
    # The owner's network allowlist (a source on 127.0.0.1 needs it: a private address).
    network_allowlist: ClassVar[tuple[str, ...]] = ()
    # The case's rig, for hooks that need it (set by the ``rig`` fixture).
    rig: Rig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "provider" in cls.__dict__:
            cls.provider_name = instrumented(cls.provider)

    # -- hooks -------------------------------------------------------------------------

    async def setup_source(self) -> None:
        """Make the source's server side ready (a queue, a table) for one case."""

    async def teardown_source(self) -> None:
        """Remove what ``setup_source`` made."""

    async def config(self, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    def secrets(self) -> dict[str, str]:
        return {}

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A config and secrets that ``init`` refuses, ``secret`` among the secrets."""
        raise NotImplementedError

    async def produce(self, n: int) -> None:
        """Make ``n`` new events available at the source."""
        raise NotImplementedError

    # -- the rig -----------------------------------------------------------------------

    @pytest.fixture
    async def rig(self, sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Rig]:
        queue = f"conf-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            task_queue=queue, database_url=sqlite_url, secret_keys=SecretStr(secret_keys)
        )
        workers = Workers(client, settings)
        await workers.start()
        await self.setup_source()
        try:
            async with make_stack(sqlite_url, client, queue, secret_keys) as s:
                if self.network_allowlist:
                    r = await s.http.put(
                        "/api/me/network-allowlist",
                        json={"entries": list(self.network_allowlist)},
                        headers=s.alice,
                    )
                    assert r.status_code == 200, r.text
                # Hooks that must stop and start the worker (a Kafka redelivery) reach it.
                self.rig = Rig(s, workers, sqlite_url)
                yield self.rig
        finally:
            await workers.stop()
            await self.teardown_source()

    async def create(self, rig: Rig, **overrides: Any) -> str:
        body = {
            "name": f"conformance {self.provider_name}",
            "provider": self.provider_name,
            "config": await self.config(**overrides),
            "secrets": self.secrets(),
        }
        trigger: dict[str, Any] = await rig.stack.create_trigger(body)
        tid: str = trigger["id"]
        return tid

    async def wait_runs(self, rig: Rig, tid: str, n: int) -> set[str]:
        async def enough() -> set[str] | None:
            keys = run_keys(tid, await runs_of(rig.stack.client, tid))
            return keys if len(keys) >= n else None

        return await eventually(enough, timeout=self.timeout, interval=0.2)

    async def disable_and_wait(self, rig: Rig, tid: str) -> None:
        s = rig.stack
        assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).is_success
        handle = s.client.get_workflow_handle(trigger_workflow_id(tid))

        async def done() -> bool:
            return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

        await eventually(done, timeout=self.timeout)

    # -- cases -------------------------------------------------------------------------

    async def test_config_errors_carry_no_secret(self, rig: Rig) -> None:
        s = rig.stack
        secret = f"pw-{uuid.uuid4().hex}"
        config, secrets = await self.bad_config(secret)
        body = {"name": "bad", "provider": self.provider_name, "config": config}
        tid = (await s.create_trigger(body | {"secrets": secrets}))["id"]

        async def failed() -> dict[str, Any] | None:
            st = await status_of(s, tid)
            return st if st["status"] == "failed" else None

        st = await eventually(failed, timeout=self.timeout)
        assert st["last_error"] and secret not in st["last_error"]
        row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
        assert secret not in str(row)
        history = await s.client.get_workflow_handle(trigger_workflow_id(tid)).fetch_history()
        assert secret not in history.to_json()

    async def test_shutdown_is_always_called(self, rig: Rig) -> None:
        tid = await self.create(rig)
        await self.produce(2)
        await self.wait_runs(rig, tid, 2)
        await self.disable_and_wait(rig, tid)
        p = probe(tid)
        assert p.inits >= 1 and p.shutdowns == p.inits

    async def test_resumes_from_where_it_stopped(self, rig: Rig) -> None:
        s = rig.stack
        tid = await self.create(rig)
        await self.produce(3)
        await self.wait_runs(rig, tid, 3)
        # A config change restarts the source (a new provider instance): it goes on from
        # where the last one stopped, not from the beginning.
        inits = probe(tid).inits
        r = await s.http.patch(
            f"/api/triggers/{tid}", json={"config": await self.config(restart=1)}, headers=s.alice
        )
        assert r.status_code == 200, r.text
        await eventually(lambda: _true(probe(tid).inits > inits), timeout=self.timeout)
        await self.produce(2)
        await self.wait_runs(rig, tid, 5)
        # Nothing was produced twice (a schedule goes on producing: at least 5 ran).
        st = await status_of(s, tid)
        assert st["duplicates"] == 0, st


async def _true(value: bool) -> bool:
    return value


class StreamConformance(SourceConformance):
    """Cases every push stream passes (the stream runtime's guarantees). Hooks beside
    ``SourceConformance``'s: ``publish``, ``publish_raw``, ``unacked``, ``redeliver_acked``;
    ``config`` takes ``max_in_flight`` and ``pause_pending`` overrides."""

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def publish_raw(self, raw: bytes) -> None:
        raise NotImplementedError

    async def unacked(self) -> int:
        """Messages not acked (group lag / pending / rows left)."""
        raise NotImplementedError

    async def redeliver_acked(self) -> None:
        """Make the broker deliver the acked messages again, under their keys."""
        raise NotImplementedError

    async def produce(self, n: int) -> None:
        await self.publish([{"n": i, "nonce": uuid.uuid4().hex} for i in range(n)])

    async def settled(self, rig: Rig, tid: str, n: int) -> set[str]:
        """All ``n`` ran, every message acked exactly as persisted, nothing left."""
        keys = await self.wait_runs(rig, tid, n)
        await eventually(lambda: self._none_left(), timeout=self.timeout)
        acked = probe(tid).acked
        assert set(acked) == keys and len(keys) == n
        return keys

    async def _none_left(self) -> bool:
        return await self.unacked() == 0

    async def _mid_stream(
        self, rig: Rig, tid: str, n: int, stop: Callable[[], Awaitable[None]]
    ) -> None:
        await self.produce(n)
        await self.wait_runs(rig, tid, n // 10)
        await stop()

    async def test_ack_after_accept_on_disable(self, rig: Rig) -> None:
        s = rig.stack
        tid = await self.create(rig, max_in_flight=20)
        await self._mid_stream(rig, tid, 300, lambda: self.disable_and_wait(rig, tid))
        handle = s.client.get_workflow_handle(trigger_workflow_id(tid))
        state = await handle.query(SNAPSHOT_QUERY, result_type=TriggerState)
        ran = run_keys(tid, await runs_of(s.client, tid))
        held = {e.key for e in state.held}
        # Acked exactly what was persisted: started, or held for the enable.
        assert set(probe(tid).acked) == ran | held
        assert (await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)).is_success
        await self.settled(rig, tid, 300)

    async def test_ack_after_accept_on_config_change(self, rig: Rig) -> None:
        s = rig.stack
        tid = await self.create(rig, max_in_flight=20)

        async def change() -> None:
            body = {"config": await self.config(max_in_flight=21)}
            r = await s.http.patch(f"/api/triggers/{tid}", json=body, headers=s.alice)
            assert r.status_code == 200, r.text

        await self._mid_stream(rig, tid, 300, change)
        await self.settled(rig, tid, 300)

        async def restarted() -> dict[str, Any] | None:
            # The cancel reaches the old source with a heartbeat: it may finish first.
            st = await status_of(s, tid)
            return st if st["stream"]["reconnects"] >= 1 else None

        st = await eventually(restarted, timeout=self.timeout)
        assert st["stale_dropped"] == 0, st

    async def test_ack_after_accept_on_worker_stop(self, rig: Rig) -> None:
        tid = await self.create(rig, max_in_flight=20)

        async def restart() -> None:
            await rig.workers.stop()
            await rig.workers.start()

        await self._mid_stream(rig, tid, 300, restart)
        await self.settled(rig, tid, 300)

    async def test_exact_prefix_when_a_signal_fails(self, rig: Rig) -> None:
        """One receive's messages go out in several signals; the second fails for real
        (the trigger workflow is terminated right after the first was persisted and
        acked): exactly the first signal's messages are acked, the rest come again."""
        s = rig.stack
        n = 250
        await self.produce(n)
        first: list[str] = []
        handle_of: dict[str, Any] = {}

        async def terminate_once(keys: list[str]) -> None:
            if not first:
                first.extend(keys)
                await handle_of["h"].terminate(reason="conformance: fail the next signal")

        tid = await self.create(rig, max_in_flight=n)
        handle_of["h"] = s.client.get_workflow_handle(trigger_workflow_id(tid))
        probe(tid).on_ack = terminate_once
        await eventually(lambda: _true(probe(tid).nacked > 0), timeout=self.timeout)
        assert probe(tid).acked == first and 0 < len(first) < n
        assert await self.unacked() == n - len(first)
        probe(tid).on_ack = None
        # A new run of the trigger workflow (any config change starts one) resumes the
        # terminated one's state; the rest is redelivered: every message runs once.
        body = {"config": await self.config(max_in_flight=n, restart=1)}
        assert (await s.http.patch(f"/api/triggers/{tid}", json=body, headers=s.alice)).is_success
        await self.settled(rig, tid, n)

    async def test_stop_reaches_a_blocked_receive(self, rig: Rig) -> None:
        tid = await self.create(rig)
        await self.produce(1)
        await self.wait_runs(rig, tid, 1)
        p = probe(tid)
        await eventually(lambda: _true(p.receiving), timeout=self.timeout)
        stopped = time.monotonic()
        stopping = asyncio.create_task(rig.workers.stop())
        await eventually(lambda: _true(not p.receiving), timeout=10)
        assert p.receive_ended_at - stopped < STOP_WITHIN
        await stopping
        assert p.shutdowns == p.inits
        await rig.workers.start()

    async def test_max_in_flight_bounds_the_unacked(self, rig: Rig) -> None:
        tid = await self.create(rig, max_in_flight=7)
        await self.produce(60)
        await self.settled(rig, tid, 60)
        p = probe(tid)
        assert p.asked == 7 and 0 < p.max_outstanding <= 7

    async def test_backpressure_pauses_and_resumes(self, rig: Rig) -> None:
        """While the trigger workflow cannot start runs (its worker is down, the source's
        is not), its backlog grows to ``pause_pending`` and the source stops receiving:
        exactly that many messages are taken, the rest wait upstream, nothing buffers. Once
        the workflow runs again the backlog drains and the source resumes by itself."""
        s = rig.stack
        await rig.workers.stop()
        await rig.workers.start("workflows", "activities")
        tid = await self.create(rig, max_in_flight=10, pause_pending=20)
        await self.wait_connected(rig, tid)
        await rig.workers.stop("workflows")
        await self.produce(100)

        async def paused() -> bool:
            return (await source_beat(s.client, tid)).get("state") == "paused"

        await eventually(paused, timeout=self.timeout)
        p = probe(tid)
        assert len(p.acked) == 20 and p.outstanding == 0, (len(p.acked), p.outstanding, p.nacked)
        assert await self.unacked() == 80
        await rig.workers.start("workflows")
        await self.settled(rig, tid, 100)
        # The backlog drained: the source says so (resumed), having paused at least once.
        st = await self.wait_connected(rig, tid)
        assert st["stream"]["pauses"] >= 1 and not st["stream"]["paused_by_backpressure"], st

    async def wait_connected(self, rig: Rig, tid: str) -> dict[str, Any]:
        async def connected() -> dict[str, Any] | None:
            st = await status_of(rig.stack, tid)
            stream = st.get("stream") or {}
            return st if stream.get("state") == "connected" else None

        result: dict[str, Any] = await eventually(connected, timeout=self.timeout)
        return result

    async def test_poison_becomes_one_dead_letter_and_the_rest_flow(self, rig: Rig) -> None:
        s = rig.stack
        tid = await self.create(rig)
        await self.produce(50)
        await self.publish_raw(b"\xff\xfe not json")
        await self.produce(50)
        await self.wait_runs(rig, tid, 100)
        await eventually(lambda: self._none_left(), timeout=self.timeout)
        assert await rig.dead_letters(tid) == 1
        assert len(probe(tid).acked) == 101

        async def counted() -> bool:
            st = await status_of(s, tid)
            return bool((st.get("stream") or {}).get("dead_letters") == 1)

        await eventually(counted, timeout=self.timeout)
        assert len(run_keys(tid, await runs_of(s.client, tid))) == 100

    async def test_redelivery_after_the_run_starts_no_second_run(self, rig: Rig) -> None:
        s = rig.stack
        tid = await self.create(rig)
        await self.produce(5)
        await self.settled(rig, tid, 5)
        await self.redeliver_acked()

        async def deduplicated() -> bool:
            st = await status_of(s, tid)
            return bool(st["duplicates"] >= 5) and await self.unacked() == 0

        await eventually(deduplicated, timeout=self.timeout)
        assert len(await runs_of(s.client, tid)) == 5
