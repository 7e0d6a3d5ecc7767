"""The stream runtime and the conformance suite, proven with a stream provider over a real
broker: a PostgreSQL table as the queue (``tests/pg_stream.py``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from tests.conformance import Rig, StreamConformance, probe, run_keys
from tests.conftest import PG_DSN, eventually, need_service
from tests.helpers import runs_of, status_of
from tests.pg_stream import PgQueue, PgQueueStream, create_queue
from triggers.contracts.names import EVENTS_SIGNAL
from triggers.contracts.trigger import EventBatch, StreamReport
from triggers.core.events import Event, Verdict, trigger_workflow_id


class TestPgQueueStream(StreamConformance):
    provider = PgQueueStream

    async def setup_source(self) -> None:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            need_service("PostgreSQL at 127.0.0.1:5432", str(exc))
        self.queue = PgQueue(conn, f"q_{uuid.uuid4().hex[:12]}")
        await create_queue(conn, self.queue.name)

    async def teardown_source(self) -> None:
        await self.queue.drop()
        await self.queue.conn.close()

    async def config(self, **overrides: Any) -> dict[str, Any]:
        restart = overrides.pop("restart", 0)
        # ``restart``: a different value of a harmless field, so the config changes.
        return {"dsn": PG_DSN, "queue": self.queue.name, "poll_seconds": 1.0 + restart} | overrides

    def secrets(self) -> dict[str, str]:
        return {"password": "unused-by-trust-auth"}

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        # Nothing listens on port 9 (discard): the connection is refused.
        dsn = "postgresql://postgres@127.0.0.1:9/test"
        return {"dsn": dsn, "queue": self.queue.name}, {"password": secret}

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        await self.queue.publish_raw([json.dumps(p).encode() for p in payloads])

    async def publish_raw(self, raw: bytes) -> None:
        await self.queue.publish_raw([raw])

    async def unacked(self) -> int:
        return await self.queue.unacked()

    async def redeliver_acked(self) -> None:
        await self.queue.redeliver_acked()

    # -- beyond the suite: the runtime's own bounds and the workflow's stream rules --------

    async def test_over_the_size_limit_and_too_many_deliveries_are_dead_letters(
        self, rig: Rig
    ) -> None:
        from triggers.providers.stream import MAX_MESSAGE_BYTES

        tid = await self.create(rig, max_deliveries=2)
        # At the bound: an event. One byte over (and 10x): dead letters.
        at_bound = json.dumps({"pad": ""}).encode()
        at_bound = at_bound[:-2] + b"x" * (MAX_MESSAGE_BYTES - len(at_bound)) + b'"}'
        assert len(at_bound) == MAX_MESSAGE_BYTES
        await self.queue.publish_raw([at_bound, at_bound + b" ", b" " * (10 * MAX_MESSAGE_BYTES)])
        # Delivered more than max_deliveries times already (as a broker counts them).
        await self.queue.conn.execute(
            f"INSERT INTO {self.queue.name} (payload, deliveries) VALUES ('{{}}', 2)"
        )
        await self.wait_runs(rig, tid, 1)
        await eventually(lambda: self._none_left(), timeout=self.timeout)
        assert await rig.dead_letters(tid) == 3
        assert len(await runs_of(rig.stack.client, tid)) == 1

    async def test_a_stream_batch_of_an_older_config_or_after_disable_is_not_lost(
        self, rig: Rig
    ) -> None:
        """The signal a stream source sends is acked upstream once persisted: the workflow
        accepts it even from an older config version, and holds it while disabled (shown
        as ``held``) until the trigger is enabled again. A pull source's is dropped."""
        s = rig.stack
        tid = await self.create(rig)
        await self.wait_connected(rig, tid)
        handle = s.client.get_workflow_handle(trigger_workflow_id(tid))

        def batch(key: str, version: int, stream: bool) -> EventBatch:
            verdict = Verdict("passed", counted=False, config_version=version)
            event = Event(
                id=key,
                key=key,
                source="t",
                type="t",
                time="2026-01-01T00:00:00Z",
                data={},
                verdict=verdict,
            )
            return EventBatch(
                [event], config_version=version, stream=StreamReport() if stream else None
            )

        # Version 0 is older than the trigger's (1).
        await handle.signal(EVENTS_SIGNAL, batch("old-stream", 0, True))
        await handle.signal(EVENTS_SIGNAL, batch("old-pull", 0, False))
        keys = await self.wait_runs(rig, tid, 1)
        assert keys == {"old-stream"}
        assert (await status_of(s, tid))["stale_dropped"] == 1

        # Disable: the source's in-flight signal arrives after it (sent here by hand; no
        # worker meanwhile, so the workflow sees both, in this order, when it next runs).
        await rig.workers.stop()
        assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).is_success
        await handle.signal(EVENTS_SIGNAL, batch("late-stream", 1, True))
        await rig.workers.start()
        await handle.result()
        state = await handle.query("snapshot")
        assert [e["key"] for e in state["held"]] == ["late-stream"]
        assert len(await runs_of(s.client, tid)) == 1

        assert (await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)).is_success
        keys = await self.wait_runs(rig, tid, 2)
        assert keys == {"old-stream", "late-stream"}
        st = await status_of(s, tid)
        assert st["held"] == 0 and st["stale_dropped"] == 1

    async def test_status_shows_the_stream(self, rig: Rig) -> None:
        tid = await self.create(rig)
        await self.produce(3)
        await self.settled(rig, tid, 3)

        async def reported() -> dict[str, Any] | None:
            st = await status_of(rig.stack, tid)
            stream = st["stream"] or {}
            return (
                stream if stream.get("last_event_at") and stream["state"] == "connected" else None
            )

        stream = await eventually(reported, timeout=self.timeout)
        assert stream["reconnects"] == 0 and stream["dead_letters"] == 0
        assert stream["paused_by_backpressure"] is False
        assert probe(tid).shutdowns == 0
        assert run_keys(tid, await runs_of(rig.stack.client, tid)) == set(probe(tid).acked)
