"""/readyz tells the truth within seconds: a Temporal that hangs, a namespace without the
search attributes; and create answers 503 naming what to register, never 500."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import make_stack
from tests.helpers import github_trigger
from triggers.infra.db import upgrade
from workers.devserver import DevServer
from workers.processes import temporal_binary


@pytest.fixture
async def hanging_address() -> AsyncIterator[str]:
    """A TCP listener that accepts connections and never answers (a hung server)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


async def test_readyz_answers_within_seconds_when_temporal_hangs(
    hanging_address: str, sqlite_url: str, secret_keys: str
) -> None:
    client = await Client.connect(hanging_address, lazy=True)
    async with make_stack(sqlite_url, client, "hung", secret_keys) as s:
        for _ in range(2):  # the first call connects; the second finds the connection hung
            began = time.monotonic()
            r = await asyncio.wait_for(s.http.get("/readyz"), timeout=30)
            took = time.monotonic() - began
            assert took <= 5, f"/readyz took {took:.1f}s"
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["ready"] is False and body["database"] == "ok"
            assert body["temporal"].startswith("unavailable ("), body


async def test_missing_search_attributes_readyz_says_so_and_create_answers_503(
    tmp_path: Path, secret_keys: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sa.db'}"
    await asyncio.to_thread(upgrade, url)
    async with DevServer(headless=True, search_attributes={}) as server:
        client = await Client.connect(server.address)
        queue = f"sa-{uuid.uuid4().hex[:6]}"
        async with make_stack(url, client, queue, secret_keys) as s:
            r = await s.http.get("/readyz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["temporal"] == "ok" and body["ready"] is False
            command = (
                "temporal operator search-attribute create --namespace default "
                "--name TriggerId --type Keyword --name TriggerOwner --type Keyword "
                "--name TriggerProvider --type Keyword"
            )
            assert body["search_attributes"] == (
                "missing: the Temporal namespace 'default' has no search attributes "
                f"TriggerId, TriggerOwner, TriggerProvider; register them once with `{command}` "
                "(`triggers dev` registers them on its own server)"
            )

            r = await s.http.post("/api/triggers", json=github_trigger(), headers=s.alice)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            detail = r.json()["detail"]
            assert detail.startswith("nothing was changed: the Temporal namespace 'default' has")
            assert "TriggerId, TriggerOwner, TriggerProvider" in detail and command in detail
            listed = (await s.http.get("/api/triggers", headers=s.alice)).json()
            assert listed["items"] == []  # nothing was created

            # The command the answer gives does register them; then all is well.
            argv = [temporal_binary(), *shlex.split(command)[1:], "--address", server.address]
            await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True)
            r = await s.http.get("/readyz")
            assert r.json() == {
                "ready": True,
                "database": "ok",
                "temporal": "ok",
                "search_attributes": "ok",
            }
            assert (
                await s.http.post("/api/triggers", json=github_trigger(), headers=s.alice)
            ).status_code == 201
