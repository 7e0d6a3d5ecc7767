"""A stream provider over a real broker that needs no new dependency: a PostgreSQL table as
the queue (``asyncpg``), for the stream runtime's and the conformance suite's tests.

Each row is a message; ``receive`` claims visible rows in id order (``FOR UPDATE SKIP
LOCKED``), counts the delivery and hides them for ``visibility_seconds`` (as SQS does);
``ack`` deletes them and records their ids in ``<queue>_acked``; ``nack`` makes them
visible again. A publisher's ``NOTIFY <queue>`` wakes a blocked ``receive`` at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from triggers.core.events import Event
from triggers.providers.base import ProviderConfigError, ProviderTransientError, SourceContext
from triggers.providers.stream import Message, PoisonMessage, StreamHealth, StreamProvider

QUEUE_NAME = r"^[a-z_][a-z0-9_]{0,40}$"


class PgQueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dsn: str
    queue: str = Field(pattern=QUEUE_NAME)
    max_in_flight: int = Field(default=100, ge=1, le=1000)
    pause_pending: int = Field(default=1000, ge=1)
    max_deliveries: int = Field(default=5, ge=1)
    visibility_seconds: float = Field(default=30.0, gt=0)
    # Without a NOTIFY, a blocked receive looks again this often (visibility timeouts).
    poll_seconds: float = Field(default=1.0, gt=0)


class PgQueueStream(StreamProvider):
    name = "test_pg_queue"
    Config = PgQueueConfig
    key_format = "<queue>/<row id>"
    optional_secrets = frozenset({"password"})
    destination_fields = ("dsn", "queue")

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        assert isinstance(config, PgQueueConfig)
        self.cfg = config
        self.q = config.queue
        self._wake = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        password = secrets.get("password")
        try:
            self._pool = await asyncpg.create_pool(
                config.dsn, password=password, min_size=1, max_size=3, timeout=5
            )
            self._listener = await asyncpg.connect(config.dsn, password=password, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            # Careless on purpose, as many drivers are: the message quotes the password.
            # The runtime must never let it reach a status, a log or the history.
            raise ProviderConfigError(
                f"cannot connect to {config.dsn} (password {password}): {exc}"
            ) from None
        await create_queue(self._pool, self.q)
        await self._listener.add_listener(self.q, self._notified)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def receive(self, max_messages: int) -> Sequence[Message]:
        assert self._pool is not None
        while True:
            self._wake.clear()
            try:
                rows = await self._pool.fetch(
                    f"UPDATE {self.q} SET deliveries = deliveries + 1, "
                    "visible_at = now() + make_interval(secs => $2) WHERE id IN "
                    f"(SELECT id FROM {self.q} WHERE visible_at <= now() ORDER BY id "
                    "LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, payload, headers, deliveries",
                    max_messages,
                    self.cfg.visibility_seconds,
                )
            except (OSError, asyncpg.PostgresError) as exc:
                raise ProviderTransientError(f"queue unavailable: {type(exc).__name__}") from None
            if rows:
                return [self._message(r) for r in sorted(rows, key=lambda r: r["id"])]
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.cfg.poll_seconds)
            except TimeoutError:
                pass

    def _message(self, row: asyncpg.Record) -> Message:
        return Message(
            key=f"{self.q}/{row['id']}",
            value=bytes(row["payload"]),
            headers=json.loads(row["headers"]),
            attempts=row["deliveries"],
            token=row["id"],
        )

    def to_event(self, message: Message) -> Event:
        try:
            data = json.loads(message.value)
        except (UnicodeDecodeError, ValueError):
            raise PoisonMessage("not JSON") from None
        if not isinstance(data, dict):
            raise PoisonMessage("not a JSON object")
        return Event(
            id=message.key,
            key=message.key,
            source=f"pg-queue://{self.q}",
            type="test.pg_queue.message",
            time=(message.time or datetime.now(UTC)).isoformat(),
            data=data,
            headers=dict(message.headers),
        )

    async def ack(self, messages: Sequence[Message]) -> None:
        assert self._pool is not None
        await self._pool.execute(
            f"WITH d AS (DELETE FROM {self.q} WHERE id = ANY($1::bigint[]) RETURNING id) "
            f"INSERT INTO {self.q}_acked (id) SELECT id FROM d ON CONFLICT DO NOTHING",
            [m.token for m in messages],
        )

    async def nack(self, messages: Sequence[Message]) -> None:
        assert self._pool is not None
        await self._pool.execute(
            f"UPDATE {self.q} SET visible_at = now() WHERE id = ANY($1::bigint[])",
            [m.token for m in messages],
        )

    async def health(self) -> StreamHealth:
        assert self._pool is not None
        total = await self._pool.fetchval(f"SELECT count(*) FROM {self.q}")
        return StreamHealth(lag=int(total), pending=int(total))

    async def shutdown(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._pool is not None:
            await self._pool.close()


async def create_queue(db: asyncpg.Pool | asyncpg.Connection, queue: str) -> None:
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {queue} (id bigserial PRIMARY KEY, payload bytea NOT "
        "NULL, headers jsonb NOT NULL DEFAULT '{}', deliveries int NOT NULL DEFAULT 0, "
        "visible_at timestamptz NOT NULL DEFAULT now());"
        f"CREATE TABLE IF NOT EXISTS {queue}_acked (id bigint PRIMARY KEY)"
    )


class PgQueue:
    """The test's side of one queue: publish, count, redeliver."""

    def __init__(self, conn: asyncpg.Connection, name: str) -> None:
        self.conn = conn
        self.name = name

    async def publish_raw(self, values: list[bytes]) -> None:
        await self.conn.executemany(
            f"INSERT INTO {self.name} (payload) VALUES ($1)", [(v,) for v in values]
        )
        await self.conn.execute(f"NOTIFY {self.name}")

    async def unacked(self) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {self.name}"))

    async def redeliver_acked(self) -> None:
        """Put every acked message back, under its own id (so under its own key)."""
        await self.conn.execute(
            f"INSERT INTO {self.name} (id, payload) SELECT id, '{{}}'::bytea FROM {self.name}_acked"
        )
        await self.conn.execute(f"NOTIFY {self.name}")

    async def drop(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {self.name}, {self.name}_acked")
