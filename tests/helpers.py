"""Helpers for sending signed deliveries and reading what Temporal recorded."""

from __future__ import annotations

import json
from typing import Any

import httpx
from temporalio.client import Client

from triggers.contracts.names import TRIGGER_WORKFLOW_TYPE
from triggers.core import signatures

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
        **signatures.sign_github(secret, body, delivery_id=delivery),
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
