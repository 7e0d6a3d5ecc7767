"""What the hostile-webhook tests share: the API as production runs it (``triggers api``:
uvicorn on 127.0.0.1, its own process) with a github trigger, requests signed or not, and
the checks every refusal must pass: no 202, no 5xx, a message body, and a connection that
either serves the next request or was announced closed and is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from tests.api_proc import ApiProcess
from tests.conftest import eventually
from tests.helpers import SECRET, count_runs, github_body, github_trigger, runs_query
from tests.raw_http import Answer, RawConnection, request
from triggers.core import vendor_signatures
from triggers.core.events import run_workflow_id
from triggers.infra import store
from triggers.infra.db import make_engine, session_factory, upgrade
from triggers.infra.settings import Settings
from workers.devserver import DevServer
from workers.main import build_worker

LIMIT = 256 * 1024
BODY_TIMEOUT = 2.0
Headers = list[tuple[str, str]]


@dataclass
class Live:
    api: ApiProcess
    client: Client
    http: httpx.AsyncClient
    tid: str  # a github trigger
    path: str
    # Deliveries accepted so far: the only runs the trigger may have.
    expected: set[str] = field(default_factory=set)

    async def connect(self) -> RawConnection:
        return await RawConnection.open(self.api.port)


@asynccontextmanager
async def live_api(
    tmp: Path, temporal: DevServer, client: Client, secret_keys: str
) -> AsyncIterator[Live]:
    """``triggers api`` on a fresh SQLite database (body timeout ``BODY_TIMEOUT``), a worker
    on its task queue, and one github trigger. At the end: the API's log holds no stack
    trace and no secret."""
    url = f"sqlite+aiosqlite:///{tmp / 'triggers.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    async with session_factory(engine)() as session:
        user = await store.create_user(session, name="alice")
        key = await store.create_api_key(session, user=user)
    await engine.dispose()
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, database_url=url, secret_keys=SecretStr(secret_keys))
    api = ApiProcess(
        temporal=temporal.address,
        database_url=url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=tmp / "api.log",
        webhook_body_timeout_seconds=str(BODY_TIMEOUT),
    )
    async with build_worker(client, settings):
        await api.start()
        try:
            async with httpx.AsyncClient(
                base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as http:
                body = github_trigger(
                    name="hostile", rate_limit_per_second=10_000, rate_limit_burst=10_000
                )
                r = await http.post("/api/triggers", json=body)
                assert r.status_code == 201, r.text
                tid = r.json()["id"]
                yield Live(api, client, http, tid, f"/webhooks/github/{tid}")
        finally:
            api.stop()
    log = (tmp / "api.log").read_text()
    # No stack trace and no secret ever reached the API's log.
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    assert SECRET not in log


def signed(body: bytes, delivery: str, *, secret: str = SECRET) -> Headers:
    return [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        *vendor_signatures.sign_github(secret, body, delivery_id=delivery).items(),
    ]


def check(answer: Answer, allowed: set[int]) -> None:
    assert answer.status in allowed, (answer.status, answer.body[:300])
    assert answer.status < 500 and answer.body.strip(), answer
    assert b"Traceback" not in answer.body and SECRET.encode() not in answer.body


async def usable_or_closed(conn: RawConnection, answer: Answer) -> bool:
    """After a refusal: True when the same connection answers the next request, False when
    the server announced ``Connection: close`` and closed it. Anything else fails."""
    if answer.closes:
        assert await conn.at_eof(), "announced Connection: close but kept the connection"
        return False
    await conn.send(request("GET", "/healthz", []))
    follow = await conn.answer()
    assert follow.status == 200, follow
    return True


async def send_and_answer(conn: RawConnection, data: bytes) -> Answer:
    """Send while reading: a server may answer (and close) before the request is all out,
    and then the rest of the send fails; the answer is what counts."""

    async def send() -> None:
        try:
            await conn.send(data)
        except ConnectionError:
            pass

    sender = asyncio.create_task(send())
    try:
        return await conn.answer()
    finally:
        await sender


async def refuse(
    live: Live,
    data: bytes,
    allowed: set[int],
    *,
    conn: RawConnection | None = None,
) -> Answer:
    """Send ``data`` (on ``conn`` or a new connection), expect a refusal in ``allowed``,
    and check the connection afterwards (closing a connection this made)."""
    own = conn is None
    c = conn or await live.connect()
    try:
        answer = await send_and_answer(c, data)
        check(answer, allowed)
        await usable_or_closed(c, answer)
        return answer
    finally:
        if own:
            await c.close()


async def accepted(live: Live, delivery: str, body: bytes | None = None) -> None:
    """A valid delivery is accepted and its run starts (the pipeline is alive)."""
    body = body or github_body(n=delivery)
    r = await live.http.post(live.path, content=body, headers=dict(signed(body, delivery)))
    assert r.status_code == 202, r.text
    live.expected.add(delivery)
    handle = live.client.get_workflow_handle(run_workflow_id(live.tid, delivery))
    await eventually(handle.describe, timeout=15)


async def runs(live: Live) -> set[str]:
    return {wf.id async for wf in live.client.list_workflows(runs_query(live.tid))}


async def assert_runs_only(live: Live) -> None:
    """Temporal lists exactly the runs of the accepted deliveries: no tampered one."""
    expected = {run_workflow_id(live.tid, d) for d in live.expected}

    async def exactly() -> bool:
        return await count_runs(live.client, live.tid) == len(expected)

    await eventually(exactly, timeout=15)
    assert await runs(live) == expected


# --- the cases ------------------------------------------------------------------------------


async def trickle(
    conn: RawConnection,
    head: bytes,
    total: int,
    *,
    chunked: bool,
    piece: int = 16 * 1024,
    pause: float = 0.01,
) -> tuple[Answer, int]:
    """Send ``head`` then ``total`` body bytes in pieces, pausing between them, until the
    server answers; the answer and how many body bytes went out before it."""
    await conn.send(head)
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        while sent < total:
            n = min(piece, total - sent)
            data = b"x" * n
            await conn.send(b"%x\r\n%s\r\n" % (n, data) if chunked else data)
            sent += n
            await asyncio.sleep(pause)  # a slow sender, not a synchronisation
        if chunked:
            await conn.send(b"0\r\n\r\n")

    sender = asyncio.create_task(send_body())
    try:
        answer = await conn.answer(timeout=60)
    finally:
        sender.cancel()
        try:
            await sender
        except (asyncio.CancelledError, ConnectionError):
            pass
    return answer, sent
