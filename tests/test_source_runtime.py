"""The generic source loop, with a test provider, on a real Temporal server and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

import tests.fake_providers  # noqa: F401  (registers test_list)
from tests.conftest import Stack, eventually, stack_with_worker
from tests.fake_providers import ListProvider
from tests.helpers import count_runs, runs_of
from triggers.core.events import trigger_workflow_id


@pytest.fixture
async def src_stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """A stack with its own worker on the test's database (the source reads it)."""
    async with stack_with_worker(sqlite_url, client, secret_keys) as stack:
        yield stack


def list_trigger(items: list[str], **config: Any) -> dict[str, Any]:
    return {"name": "list", "provider": "test_list", "config": {"items": items, **config}}


async def status_of(s: Stack, tid: str) -> dict[str, Any]:
    r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_source_events_become_runs_and_the_cursor_moves(src_stack: Stack) -> None:
    s = src_stack
    tid = (await s.create_trigger(list_trigger(["a", "b", "c"])))["id"]

    async def three() -> bool:
        return await count_runs(s.client, tid) == 3

    await eventually(three)
    st = await status_of(s, tid)
    assert st["status"] == "active" and st["cursor"] == 3 and st["runs_started"] == 3

    # A config change restarts the source from its cursor: only the new item runs.
    r = await s.http.patch(
        f"/api/triggers/{tid}", json={"config": {"items": ["a", "b", "c", "d"]}}, headers=s.alice
    )
    assert r.status_code == 200

    async def four() -> bool:
        return await count_runs(s.client, tid) == 4

    await eventually(four)
    assert sorted(await runs_of(s.client, tid)) == [f"run:{tid}:{k}" for k in "abcd"]
    assert (await status_of(s, tid))["cursor"] == 4


async def test_config_error_fails_visibly_until_the_config_changes(src_stack: Stack) -> None:
    s = src_stack
    tid = (await s.create_trigger(list_trigger(["x"], invalid=True)))["id"]

    async def failed() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["status"] == "failed" else None

    st = await eventually(failed)
    assert st["last_error"] == "items source refused the configuration"
    row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert row["status"] == "failed" and row["last_error"] == st["last_error"]
    assert await count_runs(s.client, tid) == 0

    r = await s.http.patch(
        f"/api/triggers/{tid}", json={"config": {"items": ["x"]}}, headers=s.alice
    )
    assert r.status_code == 200

    async def ran() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(ran)
    assert (await status_of(s, tid))["status"] == "active"


async def test_transient_errors_retry_then_recover(src_stack: Stack) -> None:
    s = src_stack
    tid = (await s.create_trigger(list_trigger(["y"], fail_times=3)))["id"]

    async def degraded() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["status"] == "degraded" else None

    st = await eventually(degraded)
    assert st["consecutive_errors"] >= 1
    assert st["last_error"].startswith("source unavailable")

    async def ran() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(ran, timeout=30)
    assert ListProvider.failures[tid] == 3

    async def healthy() -> bool:
        st = await status_of(s, tid)
        return st["status"] == "active" and st["consecutive_errors"] == 0

    await eventually(healthy)
    row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert row["status"] == "active" and row["last_error"] is None


async def test_disable_stops_the_source_and_calls_shutdown(src_stack: Stack) -> None:
    s = src_stack
    tid = (await s.create_trigger(list_trigger(["p"], idle_seconds=30)))["id"]

    async def ran() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(ran)
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200
    handle = s.client.get_workflow_handle(trigger_workflow_id(tid))

    async def done() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(done)
    assert ListProvider.shutdowns.get(tid, 0) >= 1


async def test_secrets_reach_the_provider_not_the_history(src_stack: Stack) -> None:
    s = src_stack
    secret = "tok-" + uuid.uuid4().hex
    body = list_trigger(["s1"]) | {"secrets": {"token": secret}}
    tid = (await s.create_trigger(body))["id"]

    async def ran() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(ran)
    assert ListProvider.seen_secrets[tid] == {"token": secret}
    history = await s.client.get_workflow_handle(trigger_workflow_id(tid)).fetch_history()
    assert secret not in history.to_json()


async def test_long_waits_park_the_source_on_a_timer(src_stack: Stack) -> None:
    s = src_stack
    tid = (await s.create_trigger(list_trigger(["q"], idle_seconds=3600)))["id"]

    async def parked() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["runs_started"] == 1 and st["next_at"] else None

    await eventually(parked)
    handle = s.client.get_workflow_handle(trigger_workflow_id(tid))

    async def no_activity() -> bool:
        desc = await handle.describe()
        return not desc.raw_description.pending_activities

    # The idle source gave its worker slot back; only a timer is pending.
    await eventually(no_activity)
    state = await handle.query("status")
    assert state["next_at"] is not None


async def test_a_config_error_carries_no_cause_chain() -> None:
    """The redacted error is raised inside ``except``: the caught one (which may quote a
    secret) must not ride along as its cause, which the SDK would serialise to history."""
    from temporalio.api.failure.v1 import Failure
    from temporalio.converter import DefaultFailureConverter, DefaultPayloadConverter
    from temporalio.exceptions import ApplicationError

    from activities.source import SourceActivities

    class _NoStatus(SourceActivities):
        async def _set_status(self, trigger_id: str, status: Any, error: str | None) -> None:
            return None

    acts = _NoStatus.__new__(_NoStatus)
    try:
        try:
            raise RuntimeError("password authentication failed: pw-LEAK-1234")
        except RuntimeError:
            await acts._fail("t", "invalid database config")
    except ApplicationError as err:
        failure = Failure()
        DefaultFailureConverter().to_failure(err, DefaultPayloadConverter(), failure)
        assert "pw-LEAK-1234" not in str(failure)
        assert not failure.HasField("cause")
    else:
        raise AssertionError("no error raised")
