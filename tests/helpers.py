"""Helpers for sending signed deliveries and reading what Temporal and the API recorded.

Shared by test modules, which import from here (or take fixtures from ``conftest.py``),
never from one another."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from temporalio.client import Client

from tests.conftest import Stack, eventually
from triggers.contracts.names import TRIGGER_WORKFLOW_TYPE
from triggers.contracts.run import RunResult
from triggers.core import vendor_signatures
from triggers.core.events import run_workflow_id
from triggers.infra import dead_letters
from triggers.infra.db import make_engine, session_factory

SECRET = "hunter2-super-secret-value-0001"


def github_body(ref: str = "refs/heads/main", **extra: Any) -> bytes:
    return json.dumps({"ref": ref, "repository": {"full_name": "acme/app"}, **extra}).encode()


async def post_github(
    http: httpx.AsyncClient,
    trigger_id: str,
    *,
    delivery: str,
    body: bytes | None = None,
    secret: str = SECRET,
    event: str = "push",
) -> httpx.Response:
    body = body if body is not None else github_body()
    headers = {
        "content-type": "application/json",
        "X-GitHub-Event": event,
        **vendor_signatures.sign_github(secret, body, delivery_id=delivery),
    }
    return await http.post(f"/webhooks/github/{trigger_id}", content=body, headers=headers)


def github_trigger(name: str = "gh", secret: str = SECRET, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "webhook",
        "config": {"preset": "github", **config},
        "secrets": {"signing_secret": secret},
    }


def runs_query(trigger_id: str) -> str:
    """The visibility query for a trigger's runs: the trigger workflow carries the same
    ``TriggerId``; its workflow type tells it apart."""
    return f'TriggerId="{trigger_id}" AND WorkflowType != "{TRIGGER_WORKFLOW_TYPE}"'


async def runs_of(client: Client, trigger_id: str) -> list[str]:
    """IDs of the runs Temporal lists for a trigger (by the TriggerId search attribute)."""
    return [wf.id async for wf in client.list_workflows(runs_query(trigger_id))]


async def count_runs(client: Client, trigger_id: str) -> int:
    return (await client.count_workflows(runs_query(trigger_id))).count


async def status_of(s: Stack, tid: str) -> dict[str, Any]:
    """``GET /api/triggers/{tid}/status`` as Alice, which must answer 200."""
    r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def cel(text: str) -> str:
    """A fixed text as a CEL string literal."""
    return json.dumps(text)


async def result_of(client: Client, trigger_id: str, delivery: str) -> RunResult:
    """The result of the run a delivery started, once it finished."""
    handle = client.get_workflow_handle(
        run_workflow_id(trigger_id, delivery), result_type=RunResult
    )

    async def done() -> RunResult:
        return await handle.result()

    return await eventually(done)


def outcome(result: RunResult, node_id: str) -> dict[str, Any]:
    """What one graph node of a run did: items in and out, calls made."""
    assert result.nodes is not None
    found = next(n for n in result.nodes if n.node_id == node_id)
    return {"in": found.items_in, "out": found.items_out, "calls": found.calls}


async def dead_letter_count(db_url: str, trigger_id: str) -> int:
    """The dead letters the store keeps for a trigger."""
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            return await dead_letters.count(session, trigger_id=uuid.UUID(trigger_id))
    finally:
        await engine.dispose()
