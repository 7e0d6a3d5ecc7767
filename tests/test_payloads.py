"""The claim-check store (large event data in ``event_payloads``) on SQLite and PostgreSQL,
its ``load_payload`` activity on a real worker, and the workers' periodic sweep."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import Worker

from tests.conftest import eventually
from tests.payload_workflows import LoadsPayload, LoadsPayloadInput
from triggers.contracts.names import PAYLOAD_MISSING, PAYLOAD_TOO_LARGE
from triggers.core.events import CLAIM_CHECK_BYTES, Event, Verdict
from triggers.infra import payloads, store
from triggers.infra.db import make_engine, session_factory
from triggers.infra.models import EventPayload, Trigger, utcnow
from triggers.infra.settings import Settings
from workers.main import build_worker
from workers.sweeper import payload_sweeper

KiB = 1024
MiB = 1024 * KiB


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    trigger_id: str

    async def rows(self) -> int:
        async with self.sessions() as session:
            return int((await session.exec(select(func.count()).select_from(EventPayload))).one())

    async def load(self, ref: str) -> Any:
        async with self.sessions() as session:
            return await payloads.load(session, ref=ref)

    async def offload(self, events: list[Event], **kw: Any) -> list[Event]:
        async with self.sessions() as session:
            return await payloads.offload(session, trigger_id=self.trigger_id, events=events, **kw)

    async def age(self, ref: str, days: float) -> None:
        """Pretend the row was stored ``days`` ago."""
        async with self.sessions() as session:
            await session.exec(
                sa.update(EventPayload)
                .where(col(EventPayload.ref) == ref)
                .values(created_at=utcnow() - timedelta(days=days))
            )
            await session.commit()


async def new_trigger(sessions: async_sessionmaker[AsyncSession], name: str = "t") -> str:
    async with sessions() as session:
        user = await store.get_user_by_name(session, name="alice")
        if user is None:
            user = await store.create_user(session, name="alice")
        trigger = Trigger(user_id=user.id, name=name, provider="webhook", target={"kind": "run"})
        trigger = await store.save(session, trigger=trigger)
        return str(trigger.id)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    try:
        yield Db(db_url, engine, sessions, await new_trigger(sessions))
    finally:
        await engine.dispose()


def event(key: str, data: Any, verdict: Verdict | None = None) -> Event:
    return Event(
        id=key,
        key=key,
        source="test",
        type="test.event",
        time="2026-12-01T00:00:00Z",
        data=data,
        verdict=verdict,
    )


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def of_size(n: int, fill: str = "x") -> str:
    """A string whose compact JSON is exactly ``n`` bytes (``fill`` is one UTF-8 byte)."""
    value = fill * (n - 2)
    assert size(value) == n
    return value


# Unicode in several planes, nesting, control characters (NUL is not allowed in PostgreSQL
# text: JSON escapes it) and a lone surrogate (no UTF-8 form).
LARGE_VALUES = {
    "nested-unicode": {
        "title": "Größe — 大きい — 🚀",
        "items": [
            {"i": i, "name": f"élément {i} ✓", "tags": ["α", "β", None, True]} for i in range(80)
        ],
        "deep": {"a": {"b": {"c": [1.5, -2, {"d": "ünïcödé" * 50}]}}},
    },
    "list": [{"n": i, "s": "🙂" * 3} for i in range(300)],
    "string": "z" * (3 * KiB),
    "control-characters": {"nul": "\x00" * 10, "text": "line\nbreak\ttab " * 300},
    "lone-surrogate": {"s": "\ud800 broken " * 400},
}


async def test_small_data_is_untouched(db: Db) -> None:
    events = [
        event("none", None),
        event("small", {"ref": "refs/heads/main"}),
        event("small-verdict", {"a": 1}, Verdict(result="passed", mapped=True, input={"x": 1})),
    ]
    out = await db.offload(events)
    assert all(a is b for a, b in zip(out, events, strict=True))
    assert out[1].data == {"ref": "refs/heads/main"} and out[1].data_ref is None
    assert await db.rows() == 0


@pytest.mark.parametrize("name", list(LARGE_VALUES))
async def test_large_data_is_stored_and_loads_back_equal(db: Db, name: str) -> None:
    value = LARGE_VALUES[name]
    original = event(f"k-{name}", value)
    [out] = await db.offload([original])
    assert out.data is None and out.data_ref is not None and len(out.data_ref) <= 100
    assert replace(out, data=value, data_ref=None) == original  # nothing else changed
    assert await db.load(out.data_ref) == value
    async with db.sessions() as session:
        assert await payloads.restore(session, event=out) == original
        row = await session.get(EventPayload, out.data_ref)
    assert row is not None and str(row.trigger_id) == db.trigger_id
    assert row.size == len(row.data.encode()) and json.loads(row.data) == value


async def test_the_threshold_is_compact_utf8_json_bytes(db: Db) -> None:
    at = of_size(CLAIM_CHECK_BYTES)
    over = of_size(CLAIM_CHECK_BYTES + 1)
    # Multi-byte characters count as their UTF-8 bytes: 2 bytes each, plus the quotes.
    wide_at = "é" * ((CLAIM_CHECK_BYTES - 2) // 2)
    assert size(wide_at) == CLAIM_CHECK_BYTES
    kept, kept_wide, moved = await db.offload(
        [event("at", at), event("wide", wide_at), event("over", over)]
    )
    assert kept.data == at and kept.data_ref is None
    assert kept_wide.data == wide_at and kept_wide.data_ref is None
    assert moved.data is None and moved.data_ref is not None
    assert await db.load(moved.data_ref) == over
    assert await db.rows() == 1
    # The threshold is a parameter.
    [small] = await db.offload([event("tiny", {"a": "bcd"})], threshold=8)
    assert small.data_ref is not None and await db.load(small.data_ref) == {"a": "bcd"}


@pytest.mark.parametrize("n", [256 * KiB, int(2.5 * MiB)], ids=["256KiB", "2.5MiB"])
async def test_big_values_round_trip(db: Db, n: int) -> None:
    value = {"blob": "q" * (n - 20) + "€", "n": 1}  # a 3-byte character at the end
    assert size(value) == n
    [out] = await db.offload([event("big", value)])
    assert out.data_ref is not None
    assert await db.load(out.data_ref) == value


async def test_same_content_twice_is_one_row(db: Db) -> None:
    value = {"body": "same " * 1000}
    [first] = await db.offload([event("k1", value)])
    [again] = await db.offload([event("k1", value)])  # a redelivery
    both = await db.offload([event("k1", value), event("k1", value)])  # twice in one batch
    assert first.data_ref == again.data_ref == both[0].data_ref == both[1].data_ref
    assert await db.rows() == 1
    # Different content under the same key, and the same content under another key: rows
    # of their own.
    [changed] = await db.offload([event("k1", {"body": "changed " * 1000})])
    [other_key] = await db.offload([event("k2", value)])
    assert len({first.data_ref, changed.data_ref, other_key.data_ref}) == 3
    assert await db.rows() == 3
    assert await db.load(changed.data_ref or "") == {"body": "changed " * 1000}


async def test_concurrent_offloads_of_the_same_event(db: Db) -> None:
    """Two API processes accepting the same delivery at once: no error, one row."""
    value = {"body": "race " * 1000}
    results = await asyncio.gather(*(db.offload([event("race", value)]) for _ in range(8)))
    assert len({r[0].data_ref for r in results}) == 1
    assert await db.rows() == 1
    # Overlapping batches in opposite orders (a redelivered batch, reordered).
    batch = [event(f"b{i}", {"body": f"{i} " * 1500}) for i in range(6)]
    orders = [batch, batch[::-1]] * 4
    results = await asyncio.gather(*(db.offload(order) for order in orders))
    assert len({e.data_ref for r in results for e in r}) == 6
    assert await db.rows() == 7


async def test_an_offload_waits_for_a_concurrent_insert_of_the_same_ref(db: Db) -> None:
    """The race made certain: one transaction has inserted the row but not committed when
    the other stores the same ref. The second waits, then finds the row: no error."""
    value = {"body": "held " * 1000}
    blob = payloads.compact_json(value)
    ref = payloads.payload_ref(db.trigger_id, "held", blob)
    async with db.sessions() as holder:
        await payloads._insert_absent(holder, trigger_id=uuid.UUID(db.trigger_id), rows={ref: blob})
        other = asyncio.create_task(db.offload([event("held", value)]))
        if db.url.startswith("postgresql"):

            async def blocked() -> bool:
                async with db.sessions() as session:
                    waiting = await session.scalar(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                    )
                    return bool(waiting)

            await eventually(blocked)
        else:
            # SQLite: the writer waits on the database lock (busy timeout).
            done, _ = await asyncio.wait({other}, timeout=0.5)
            assert not done
        await holder.commit()
    [out] = await other
    assert out.data_ref == ref
    assert await db.rows() == 1 and await db.load(ref) == value


async def test_a_mapped_input_is_stored_under_its_own_ref(db: Db) -> None:
    data = {"body": "data " * 1000}
    mapped = {"input": "mapped " * 1000}
    passed = Verdict(result="passed", mapped=True, input=mapped, config_version=3)
    [both, input_only, unmapped] = await db.offload(
        [
            event("both", data, passed),
            event("input-only", {"small": True}, passed),
            event("unmapped", {"small": True}, Verdict(result="passed", input=mapped)),
        ]
    )
    assert both.verdict is not None and both.verdict.input is None
    assert both.verdict.input_ref is not None and both.data_ref is not None
    assert both.verdict.input_ref != both.data_ref
    assert both.verdict.result == "passed" and both.verdict.config_version == 3
    assert await db.load(both.verdict.input_ref) == mapped
    assert await db.load(both.data_ref) == data
    async with db.sessions() as session:
        assert await payloads.restore(session, event=both) == event("both", data, passed)

    assert input_only.data == {"small": True} and input_only.data_ref is None
    assert input_only.verdict is not None and input_only.verdict.input_ref is not None
    # Its own row: the ref includes the event key.
    assert input_only.verdict.input_ref != both.verdict.input_ref
    # A verdict that is not a mapping is not the run's input: left as it is.
    assert unmapped.verdict is not None and unmapped.verdict.input == mapped
    assert unmapped.verdict.input_ref is None
    assert await db.rows() == 3


async def test_a_missing_ref_raises_payload_missing(db: Db) -> None:
    ref = payloads.payload_ref(db.trigger_id, "never", b"stored")
    with pytest.raises(payloads.PayloadMissing) as info:
        await db.load(ref)
    assert info.value.ref == ref and ref in str(info.value)
    async with db.sessions() as session:
        with pytest.raises(payloads.PayloadMissing):
            await payloads.restore(session, event=replace(event("e", None), data_ref=ref))


async def test_sweep_deletes_only_old_rows(db: Db) -> None:
    old, fresh, edge = await db.offload(
        [event(k, {"k": k, "pad": "p" * 3000}) for k in ("old", "fresh", "edge")]
    )
    assert old.data_ref and fresh.data_ref and edge.data_ref
    await db.age(old.data_ref, days=8)
    await db.age(edge.data_ref, days=6.9)
    cutoff = utcnow() - timedelta(days=7)
    async with db.sessions() as session:
        # The cutoff's offset does not matter (SQLite stores UTC without one).
        east = cutoff.astimezone(timezone(timedelta(hours=5)))
        assert await payloads.sweep(session, older_than=east) == 1
        assert await payloads.sweep(session, older_than=cutoff) == 0
        with pytest.raises(ValueError, match="timezone"):
            await payloads.sweep(session, older_than=datetime(2026, 1, 1))
    with pytest.raises(payloads.PayloadMissing):
        await db.load(old.data_ref)
    assert await db.load(fresh.data_ref) == {"k": "fresh", "pad": "p" * 3000}
    assert await db.load(edge.data_ref) == {"k": "edge", "pad": "p" * 3000}
    assert await db.rows() == 2


async def test_payloads_go_with_their_trigger(db: Db) -> None:
    other = await new_trigger(db.sessions, name="other")
    [mine] = await db.offload([event("e", {"pad": "m" * 3000})])
    async with db.sessions() as session:
        [theirs] = await payloads.offload(
            session, trigger_id=other, events=[event("e", {"pad": "m" * 3000})]
        )
    assert mine.data_ref != theirs.data_ref  # same key and content, other trigger
    async with db.sessions() as session:
        trigger = await store.get_trigger(session, trigger_id=uuid.UUID(db.trigger_id))
        await session.delete(trigger)
        await session.commit()
    with pytest.raises(payloads.PayloadMissing):
        await db.load(mine.data_ref or "")
    assert await db.load(theirs.data_ref or "") == {"pad": "m" * 3000}
    assert await db.rows() == 1


def test_payload_ref_is_stable_and_bounded() -> None:
    tid = str(uuid.uuid4())
    long_key = "k" * 200 + "~" + "f" * 64  # as long as a bound key gets
    ref = payloads.payload_ref(tid, long_key, b"content")
    assert len(ref) <= 100 and ref.startswith(uuid.UUID(tid).hex + ":")
    assert payloads.payload_ref(tid.upper(), long_key, b"content") == ref
    assert payloads.payload_ref(tid, long_key, b"content!") != ref
    assert payloads.payload_ref(tid, long_key + "x", b"content") != ref
    assert payloads.payload_ref(str(uuid.uuid4()), long_key, b"content") != ref
    # No ambiguity where the key ends and the content starts.
    assert payloads.payload_ref(tid, "ab", b"c") != payloads.payload_ref(tid, "a", b"bc")
    with pytest.raises(ValueError):
        payloads.payload_ref("not-a-uuid", "k", b"")


# --- the activity, on a real worker --------------------------------------------------------


@pytest.fixture
async def triggers_worker(
    db: Db, client: Client, secret_keys: str
) -> AsyncIterator[tuple[str, str]]:
    """``build_worker`` on the test's database, and a worker for the calling workflow on a
    queue of its own (as a user's workflow would be): their two queues."""
    queue = f"payloads-{uuid.uuid4().hex[:8]}"
    caller = f"caller-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, database_url=db.url, secret_keys=SecretStr(secret_keys))
    async with (
        build_worker(client, settings),
        Worker(client, task_queue=caller, workflows=[LoadsPayload]),
    ):
        yield queue, caller


async def run_loader(client: Client, queues: tuple[str, str], ref: str) -> Any:
    queue, caller = queues
    return await client.execute_workflow(
        LoadsPayload.run,
        LoadsPayloadInput(ref=ref, triggers_queue=queue),
        id=f"loads-{uuid.uuid4().hex}",
        task_queue=caller,
        execution_timeout=timedelta(seconds=60),
    )


def application_error(err: WorkflowFailureError) -> tuple[ActivityError, ApplicationError]:
    activity_error = err.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    return activity_error, cause


async def test_the_activity_loads_a_payload(
    db: Db, client: Client, triggers_worker: tuple[str, str]
) -> None:
    value = LARGE_VALUES["nested-unicode"]
    [out] = await db.offload([event("act", value)])
    assert out.data_ref is not None
    assert await run_loader(client, triggers_worker, out.data_ref) == value


async def test_the_activity_fails_a_missing_payload_for_good(
    db: Db, client: Client, triggers_worker: tuple[str, str]
) -> None:
    secret_data = {"card": "4111-1111-1111-1111 " * 200}
    [out] = await db.offload([event("gone", secret_data)])
    assert out.data_ref is not None
    await db.age(out.data_ref, days=30)
    async with db.sessions() as session:
        assert await payloads.sweep(session, older_than=utcnow() - timedelta(days=7)) == 1

    with pytest.raises(WorkflowFailureError) as info:
        await run_loader(client, triggers_worker, out.data_ref)
    activity_error, cause = application_error(info.value)
    assert cause.type == PAYLOAD_MISSING and cause.non_retryable
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert out.data_ref in cause.message and "4111" not in cause.message


async def test_the_activity_refuses_a_result_over_temporal_limits(
    db: Db, client: Client, triggers_worker: tuple[str, str]
) -> None:
    """2.5 MiB can be stored, but no activity result may carry it: one non-retryable
    failure naming the ref and the size, not an SDK error on every retry."""
    value = {"blob": "4111" * (640 * KiB)}
    [out] = await db.offload([event("huge", value)])
    assert out.data_ref is not None
    with pytest.raises(WorkflowFailureError) as info:
        await run_loader(client, triggers_worker, out.data_ref)
    activity_error, cause = application_error(info.value)
    assert cause.type == PAYLOAD_TOO_LARGE and cause.non_retryable
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert out.data_ref in cause.message and "4111" not in cause.message


# --- the workers' sweep ---------------------------------------------------------------------


async def test_the_worker_sweep_deletes_expired_payloads_until_stopped(db: Db) -> None:
    old, fresh = await db.offload(
        [event("old", {"pad": "o" * 3000}), event("fresh", {"pad": "f" * 3000})]
    )
    assert old.data_ref and fresh.data_ref
    await db.age(old.data_ref, days=3.5)
    settings = Settings(database_url=db.url, payload_retention_days=3)
    async with payload_sweeper(settings, interval=0.05) as task:

        async def swept() -> bool:
            return await db.rows() == 1

        await eventually(swept)
        # It keeps sweeping: a row that expires later goes too.
        await db.age(fresh.data_ref, days=4)

        async def all_swept() -> bool:
            return await db.rows() == 0

        await eventually(all_swept)
        assert not task.done()
    assert task.cancelled()


async def test_a_failing_sweep_does_not_stop_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without the schema: every sweep fails.
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with caplog.at_level(logging.ERROR, logger="triggers.sweeper"):
        async with payload_sweeper(settings, interval=0.05) as task:

            async def failed_twice() -> bool:
                return (
                    sum("sweeping event payloads failed" in r.message for r in caplog.records) >= 2
                )

            await eventually(failed_twice)
            assert not task.done()
    assert task.cancelled()


def test_retention_setting() -> None:
    assert Settings().payload_retention_days == 7
    with pytest.raises(ValueError):
        Settings(payload_retention_days=0)
