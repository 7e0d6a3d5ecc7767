"""Answers that mean what they say: every failed call to Temporal is a 503 with Retry-After
(never a 500, never a made-up "not running"), ``runs_in_flight`` is what Temporal runs, and
a schedule past its end is ``finished``."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import (
    Client,
    CountWorkflowsInput,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    StartWorkflowInput,
    WorkflowExecutionCount,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from api.app import create_app
from tests.conftest import Stack, eventually, make_stack
from tests.helpers import github_trigger, post_github, runs_of, status_of
from tests.user_workflows import HeldRun, StatuslessTrigger
from triggers.contracts.names import STATUS_QUERY
from triggers.contracts.trigger import TriggerStatus
from triggers.core.events import run_workflow_id, trigger_workflow_id
from triggers.infra.settings import Settings
from workers.devserver import DevServer
from workers.main import build_worker
from workers.ports import free_port

RETRY_AFTER = 9


@asynccontextmanager
async def api_on(db: str, client: Client, queue: str, secret_keys: str) -> AsyncIterator[Any]:
    """A second API process on the same database, talking to Temporal through ``client``:
    the users and triggers are those another stack made."""
    settings = Settings(
        database_url=db,
        task_queue=queue,
        secret_keys=SecretStr(secret_keys),
        retry_after_seconds=RETRY_AFTER,
    )
    app = create_app(settings, client=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def assert_503(r: httpx.Response, detail: str, *, hidden: tuple[str, ...] = ()) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == str(RETRY_AFTER)
    assert r.json() == {"detail": detail}
    for text in hidden:
        assert text not in r.text


# -- real Temporal errors ------------------------------------------------------------------


async def test_a_namespace_that_does_not_exist_answers_503_on_every_route(
    sqlite_url: str,
    client: Client,
    temporal: DevServer,
    worker: Worker,
    task_queue: str,
    secret_keys: str,
) -> None:
    async with make_stack(sqlite_url, client, task_queue, secret_keys) as s:
        tid = (await s.create_trigger(github_trigger()))["id"]
        off = (await s.create_trigger(github_trigger("off") | {"enabled": False}))["id"]
        namespace = f"missing-{uuid.uuid4().hex[:8]}"
        lost = await Client.connect(temporal.address, namespace=namespace)
        async with api_on(sqlite_url, lost, task_queue, secret_keys) as http:
            refused = "Temporal refused the call (NOT_FOUND); retry later"
            hidden = (namespace, "is not found")
            # Not "running: false": Temporal did not say the workflow is gone.
            r = await http.get(f"/api/triggers/{tid}/status", headers=s.alice)
            assert_503(r, f"status unknown: {refused}", hidden=hidden)
            r = await post_github(http, tid, delivery="lost-1")
            assert_503(r, f"event not accepted: {refused}", hidden=hidden)
            changed = f"nothing was changed: {refused}"
            r = await http.patch(f"/api/triggers/{tid}", json={"name": "x"}, headers=s.alice)
            assert_503(r, changed, hidden=hidden)
            r = await http.post(f"/api/triggers/{off}/enable", headers=s.alice)
            assert_503(r, changed, hidden=hidden)
            # A disable that Temporal was not told of is not made either.
            r = await http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
            assert_503(r, changed, hidden=hidden)
            r = await http.delete(f"/api/triggers/{tid}", headers=s.alice)
            assert_503(r, changed, hidden=hidden)
            r = await http.post("/api/triggers", json=github_trigger("new"), headers=s.alice)
            assert_503(r, changed, hidden=hidden)
            r = await http.post(f"/api/triggers/{tid}/test", json={"last": 1}, headers=s.alice)
            assert_503(r, f"recent events unknown: {refused}", hidden=hidden)

            # The same connection goes on answering, and nothing changed.
            row = await http.get(f"/api/triggers/{tid}", headers=s.alice)
            assert row.status_code == 200, row.text
            assert row.json()["enabled"] is True and row.json()["config_version"] == 1
            listed = (await http.get("/api/triggers", headers=s.alice)).json()
            assert sorted(t["name"] for t in listed["items"]) == ["gh", "off"]
        assert (await post_github(s.http, tid, delivery="found-1")).status_code == 202


async def test_a_namespace_without_the_search_attributes_answers_503(
    sqlite_url: str, client: Client, temporal: DevServer, task_queue: str, secret_keys: str
) -> None:
    async with make_stack(sqlite_url, client, task_queue, secret_keys) as s:
        off = (await s.create_trigger(github_trigger() | {"enabled": False}))["id"]
        namespace = f"bare-{uuid.uuid4().hex[:8]}"
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(seconds=86400),
            )
        )
        bare = await Client.connect(temporal.address, namespace=namespace)

        async def known() -> bool:
            try:
                await bare.get_workflow_handle("nothing").describe()
            except RPCError as exc:
                return "Namespace" not in exc.message
            return True

        await eventually(known)
        async with api_on(sqlite_url, bare, task_queue, secret_keys) as http:
            # The answer names what is missing and how to register it (never Temporal's
            # own message, which may quote event data).
            missing = (
                f"the Temporal namespace {namespace!r} has no search attributes TriggerId, "
                "TriggerOwner, TriggerProvider; register them once with `temporal operator "
                f"search-attribute create --namespace {namespace} --name TriggerId --type "
                "Keyword --name TriggerOwner --type Keyword --name TriggerProvider --type "
                "Keyword` (`triggers dev` registers them on its own server); retry later"
            )
            r = await http.post(f"/api/triggers/{off}/enable", headers=s.alice)
            assert_503(r, f"nothing was changed: {missing}")
            # No workflow in that namespace, and counting its runs is refused: 503.
            r = await http.get(f"/api/triggers/{off}/status", headers=s.alice)
            assert_503(r, f"status unknown: {missing}")
            row = await http.get(f"/api/triggers/{off}", headers=s.alice)
            assert row.status_code == 200 and row.json()["enabled"] is False


async def test_a_temporal_that_cannot_be_connected_to_answers_503(
    sqlite_url: str, client: Client, task_queue: str, secret_keys: str
) -> None:
    async with make_stack(sqlite_url, client, task_queue, secret_keys) as s:
        tid = (await s.create_trigger(github_trigger()))["id"]
        # As the API starts while Temporal is down: a lazy client that never connected.
        nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
        async with api_on(sqlite_url, nowhere, task_queue, secret_keys) as http:
            down = "Temporal is unreachable (cannot connect); retry later"
            r = await post_github(http, tid, delivery="nowhere-1")
            assert_503(r, f"event not accepted: {down}", hidden=("tcp", "127.0.0.1"))
            r = await http.get(f"/api/triggers/{tid}/status", headers=s.alice)
            assert_503(r, f"status unknown: {down}")
            assert (await http.get(f"/api/triggers/{tid}", headers=s.alice)).status_code == 200


async def test_a_status_query_no_worker_answers_is_503_until_a_worker_runs(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    async with make_stack(
        sqlite_url, client, queue, secret_keys, retry_after_seconds=RETRY_AFTER
    ) as s:
        # Signal-with-start needs no worker: the trigger workflow exists, nobody runs it.
        tid = (await s.create_trigger(github_trigger()))["id"]
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        assert_503(
            r,
            "status unknown: the trigger workflow did not answer its query in time "
            "(no worker polling?); retry later",
        )
        assert (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).status_code == 200
        async with build_worker(client, Settings(task_queue=queue)):

            async def answered() -> dict[str, Any] | None:
                r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
                return r.json() if r.status_code == 200 else None

            st = await eventually(answered, timeout=30)
            assert st is not None and st["running"] is True and st["status"] == "active"
            await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)


async def test_a_status_query_the_workflow_cannot_answer_is_503(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    queue = f"foreign-{uuid.uuid4().hex[:8]}"
    async with (
        Worker(client, task_queue=queue, workflows=[StatuslessTrigger]),
        make_stack(sqlite_url, client, queue, secret_keys, retry_after_seconds=RETRY_AFTER) as s,
    ):
        tid = (await s.create_trigger(github_trigger()))["id"]
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        assert_503(
            r,
            "status unknown: the trigger workflow failed to answer its query; retry later",
            hidden=("handler", "known queries"),
        )
        assert (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).status_code == 200
    await client.get_workflow_handle(trigger_workflow_id(tid)).terminate()


# -- any error, through a client that fails one call ----------------------------------------


class Faults(Interceptor):
    """A test double around a real client: the next call of a kind raises a given error,
    every other call reaches the real server."""

    def __init__(self) -> None:
        self.next: dict[str, BaseException] = {}

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Failing(next, self)

    def take(self, call: str) -> None:
        error = self.next.pop(call, None)
        if error is not None:
            raise error


class _Failing(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, faults: Faults) -> None:
        super().__init__(next)
        self._faults = faults

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._faults.take("start")
        return await super().start_workflow(input)

    async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
        self._faults.take("describe")
        return await super().describe_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        self._faults.take("query")
        return await super().query_workflow(input)

    async def count_workflows(self, input: CountWorkflowsInput) -> WorkflowExecutionCount:
        self._faults.take("count")
        return await super().count_workflows(input)


@pytest.fixture
async def faulty(
    sqlite_url: str, client: Client, worker: Worker, task_queue: str, secret_keys: str
) -> AsyncIterator[tuple[Stack, Faults]]:
    faults = Faults()
    double = Client(client.service_client, namespace=client.namespace, interceptors=[faults])
    async with make_stack(
        sqlite_url, double, task_queue, secret_keys, retry_after_seconds=RETRY_AFTER
    ) as s:
        yield s, faults


SECRET_ECHO = "payload-field-4711"  # what an RPC message might quote from user data


def rpc(code: RPCStatusCode) -> RPCError:
    return RPCError(f"rejected: {SECRET_ECHO}", code, b"")


@pytest.mark.parametrize(
    ("call", "error", "cause"),
    [
        (
            "describe",
            rpc(RPCStatusCode.PERMISSION_DENIED),
            "Temporal refused the call (PERMISSION_DENIED)",
        ),
        (
            "query",
            rpc(RPCStatusCode.INVALID_ARGUMENT),
            "Temporal refused the call (INVALID_ARGUMENT)",
        ),
        ("query", rpc(RPCStatusCode.INTERNAL), "the call to Temporal failed (INTERNAL)"),
        (
            "query",
            WorkflowQueryFailedError(SECRET_ECHO),
            "the trigger workflow failed to answer its query",
        ),
        (
            "query",
            WorkflowQueryRejectedError(WorkflowExecutionStatus.COMPLETED),
            "the trigger workflow rejected the query",
        ),
        ("query", TimeoutError(), "Temporal did not answer in time"),
        (
            "count",
            rpc(RPCStatusCode.UNAUTHENTICATED),
            "Temporal refused the call (UNAUTHENTICATED)",
        ),
    ],
)
async def test_any_error_on_the_status_path_is_503_then_the_next_request_answers(
    faulty: tuple[Stack, Faults], call: str, error: BaseException, cause: str
) -> None:
    s, faults = faulty
    tid = (await s.create_trigger(github_trigger()))["id"]
    url = f"/api/triggers/{tid}/status"

    async def answered() -> bool:
        return (await s.http.get(url, headers=s.alice)).status_code == 200

    await eventually(answered)  # the workflow has taken its first task
    faults.next[call] = error
    r = await s.http.get(url, headers=s.alice)
    assert_503(r, f"status unknown: {cause}; retry later", hidden=(SECRET_ECHO,))
    r = await s.http.get(url, headers=s.alice)
    assert r.status_code == 200 and r.json()["running"] is True


@pytest.mark.parametrize(
    ("call", "error", "cause"),
    [
        (
            "start",
            rpc(RPCStatusCode.PERMISSION_DENIED),
            "Temporal refused the call (PERMISSION_DENIED)",
        ),
        (
            "start",
            rpc(RPCStatusCode.INVALID_ARGUMENT),
            "Temporal refused the call (INVALID_ARGUMENT)",
        ),
        (
            "start",
            rpc(RPCStatusCode.FAILED_PRECONDITION),
            "Temporal refused the call (FAILED_PRECONDITION)",
        ),
        ("start", TimeoutError(), "Temporal did not answer in time"),
    ],
)
async def test_any_error_on_the_webhook_path_is_503_and_the_retry_is_accepted(
    faulty: tuple[Stack, Faults], call: str, error: BaseException, cause: str
) -> None:
    s, faults = faulty
    tid = (await s.create_trigger(github_trigger()))["id"]
    faults.next[call] = error
    r = await post_github(s.http, tid, delivery="d-1")
    assert_503(r, f"event not accepted: {cause}; retry later", hidden=(SECRET_ECHO,))
    # The sender retries on the same connection: accepted, and not called a duplicate.
    r = await post_github(s.http, tid, delivery="d-1")
    assert r.status_code == 202, r.text
    assert r.json()["duplicate"] is False

    async def ran() -> bool:
        return await runs_of(s.client, tid) == [run_workflow_id(tid, "d-1")]

    await eventually(ran)


# -- runs_in_flight --------------------------------------------------------------------------


async def test_runs_in_flight_counts_the_triggers_running_runs(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    queue = f"held-{uuid.uuid4().hex[:6]}"
    body = github_trigger() | {
        "target": {"kind": "workflow", "workflow_type": "HeldRun", "task_queue": queue}
    }
    await s.claim_queues(queue)
    async with Worker(s.client, task_queue=queue, workflows=[HeldRun]):
        tid = (await s.create_trigger(body))["id"]
        for i in range(3):
            assert (await post_github(s.http, tid, delivery=f"held-{i}")).status_code == 202

        async def in_flight(n: int, *, running: bool) -> bool:
            st = await status_of(s, tid)
            return bool(st["runs_in_flight"] == n and st["running"] is running)

        await eventually(lambda: in_flight(3, running=True), timeout=30)

        # Disabled, the trigger workflow completes; its runs go on, and still count.
        assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).is_success
        trigger = s.client.get_workflow_handle(trigger_workflow_id(tid))

        async def completed() -> bool:
            return (await trigger.describe()).status == WorkflowExecutionStatus.COMPLETED

        await eventually(completed)
        await eventually(lambda: in_flight(3, running=False))

        for i in range(3):
            await s.client.get_workflow_handle(run_workflow_id(tid, f"held-{i}")).signal(
                HeldRun.release
            )
        await eventually(lambda: in_flight(0, running=False), timeout=30)


# -- finished schedules ------------------------------------------------------------------------


@pytest.mark.parametrize("ends_in", [timedelta(seconds=3), timedelta(hours=-1)])
async def test_a_schedule_past_its_end_is_finished_with_no_next_fire(
    src_stack: Stack,
    ends_in: timedelta,
) -> None:
    s = src_stack
    end = datetime.now(UTC) + ends_in
    body = {
        "name": "short",
        "provider": "cron",
        "config": {"every": "1s", "end_at": end.isoformat()},
    }
    tid = (await s.create_trigger(body))["id"]

    async def finished() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["status"] == "finished" else None

    st = await eventually(finished, timeout=30)
    assert st is not None and st["next_at"] is None and st["running"] is True
    row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert row["status"] == "finished" and row["last_error"] is None
    slots = [datetime.fromisoformat(r.split(":", 2)[2]) for r in await runs_of(s.client, tid)]
    assert all(slot <= end for slot in slots)
    assert (len(slots) >= 1) is (ends_in > timedelta(0))
    assert st["runs_started"] == len(slots)


async def test_status_is_the_workflow_query_as_is(sqlite_stack: Stack) -> None:
    """One status model: ``GET .../status`` answers the workflow's status query, with only
    ``runs_in_flight`` filled in from Temporal's visibility."""
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    answered = await status_of(s, tid)
    asked = await s.client.get_workflow_handle(trigger_workflow_id(tid)).query(
        STATUS_QUERY, result_type=TriggerStatus
    )
    queried = dataclasses.asdict(asked)
    assert set(answered) == {f.name for f in dataclasses.fields(TriggerStatus)}
    # The history grows between the two calls (the query itself adds nothing, but a
    # workflow task may have run); everything else is the query's.
    moving = {"runs_in_flight", "history_length", "history_size"}
    assert {k: v for k, v in answered.items() if k not in moving} == {
        k: v for k, v in queried.items() if k not in moving
    }
    assert answered["running"] is True and answered["workflow_id"] == trigger_workflow_id(tid)

    # Not running: the row's facts in the same shape.
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200

    async def stopped() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if not st["running"] else None

    st = await eventually(stopped)
    assert set(st) == set(answered)
    assert st["enabled"] is False and st["status"] == "disabled" and st["events_received"] == 0
