"""The SQL polling provider against real databases: SQLite (a file) and PostgreSQL."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import _drop_pg, _pg_database
from tests.sink import MemorySink
from triggers.core.events import Event
from triggers.providers import get_provider
from triggers.providers.base import (
    ProviderConfigError,
    ProviderTransientError,
    SourceContext,
    SourceStop,
)
from triggers.providers.sql_poll import SqlPollProvider
from triggers.providers.sql_poll_config import SqlPollConfig
from workers.ports import free_port

# Tests reach a local PostgreSQL and SQLite files under the temp folder, so they allow both.
CONTEXT = SourceContext(
    trigger_id="t-sql",
    trigger_name="orders",
    owner="alice",
    network_allowlist=("127.0.0.1", f"file:{tempfile.gettempdir()}"),
)
QUERY = (
    "SELECT id, updated_at, payload, amount, raw FROM orders "
    "WHERE updated_at >= :cursor ORDER BY updated_at, id"
)
BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLOCK = datetime(2024, 6, 1, tzinfo=UTC)
PASSWORD = "pw-Zq8-not-for-logs"


@dataclass
class Source:
    """The database polled by the provider, and the test's own connection to it."""

    kind: str
    url: str
    engine: AsyncEngine

    def ts(self, second: int) -> Any:
        """The value stored in updated_at: a datetime on PostgreSQL, ISO text on SQLite."""
        value = BASE + timedelta(seconds=second)
        return value if self.kind == "postgresql" else value.isoformat()

    async def insert(self, row_id: int, second: int, payload: str = "p") -> None:
        await self.execute(
            "INSERT INTO orders (id, updated_at, payload, amount, raw) "
            "VALUES (:id, :ts, :payload, :amount, :raw)",
            id=row_id,
            ts=self.ts(second),
            payload=payload,
            amount=Decimal("12.50") if self.kind == "postgresql" else 12.5,
            raw=b"\x00\x01raw",
        )

    async def update(self, row_id: int, second: int, payload: str) -> None:
        await self.execute(
            "UPDATE orders SET updated_at = :ts, payload = :payload WHERE id = :id",
            id=row_id,
            ts=self.ts(second),
            payload=payload,
        )

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(sql), params)


def key(row_id: int, second: int) -> str:
    return f"{row_id}@{(BASE + timedelta(seconds=second)).isoformat()}"


def keys(events: Sequence[Event]) -> list[str]:
    return [e.key for e in events]


@asynccontextmanager
async def make_source(kind: str, tmp_path: Path) -> AsyncIterator[Source]:
    """An empty ``orders`` table in a SQLite file or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
        ddl = (
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, "
            "payload TEXT, amount NUMERIC, raw BLOB)"
        )
    else:
        url = await _pg_database()
        ddl = (
            "CREATE TABLE orders (id integer PRIMARY KEY, updated_at timestamptz NOT NULL, "
            "payload text, amount numeric(10, 2), raw bytea)"
        )
    engine = create_async_engine(url)
    try:
        src = Source(kind, url, engine)
        await src.execute(ddl)
        yield src
    finally:
        await engine.dispose()
        if kind == "postgresql":
            await _drop_pg(url)


@pytest.fixture(params=["sqlite", "postgresql"])
async def source(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Source]:
    async with make_source(request.param, tmp_path) as src:
        yield src


@pytest.fixture
async def pg_source(tmp_path: Path) -> AsyncIterator[Source]:
    async with make_source("postgresql", tmp_path) as src:
        yield src


def config(url: str, **overrides: Any) -> SqlPollConfig:
    values: dict[str, Any] = {
        "url": url,
        "query": QUERY,
        "cursor_column": "updated_at",
        "id_column": "id",
        "initial_cursor": "1970-01-01T00:00:00+00:00",
        "start_from": "beginning",
        "interval": "10s",
    }
    values.update(overrides)
    return SqlPollConfig.model_validate(values)


async def started(cfg: SqlPollConfig, secrets: dict[str, str] | None = None) -> SqlPollProvider:
    provider = SqlPollProvider()
    await provider.init(cfg, secrets or {}, CONTEXT)
    return provider


class HookSink(MemorySink):
    """A MemorySink that runs ``between_polls(n)`` after the n-th wait, before the next poll,
    the way rows arrive in a table while a trigger idles."""

    def __init__(self, between_polls: Callable[[int], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(clock=CLOCK, **kwargs)
        self._between_polls = between_polls

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        await super().wait(seconds, next_at=next_at)
        await self._between_polls(len(self.waits))


async def run(provider: SqlPollProvider, sink: MemorySink) -> None:
    """One activity attempt: run until the sink stops the loop."""
    with pytest.raises(SourceStop):
        await provider.run(sink)


async def test_beginning_emits_existing_rows_in_cursor_order(source: Source) -> None:
    for row_id, second in [(1, 3), (2, 1), (3, 2)]:
        await source.insert(row_id, second, payload=f"order {row_id}")
    provider = await started(config(source.url))
    sink = MemorySink(clock=CLOCK, stop_after_waits=1)
    try:
        await run(provider, sink)
    finally:
        await provider.shutdown()
    assert keys(sink.events) == [key(2, 1), key(3, 2), key(1, 3)]
    first = sink.events[0]
    assert first.id == first.key
    assert first.type == "sql_poll.row"
    assert first.subject == "2"
    assert first.source == "sql:" + source.url
    assert first.time == CLOCK.isoformat()
    assert first.data["id"] == 2
    assert first.data["payload"] == "order 2"
    assert first.data["updated_at"] == (BASE + timedelta(seconds=1)).isoformat()
    assert first.data["raw"] == base64.b64encode(b"\x00\x01raw").decode()
    if source.kind == "postgresql":
        assert first.data["amount"] == "12.50"  # Decimal as text, never a lossy float
    assert sink.cursor == {
        "value": (BASE + timedelta(seconds=3)).isoformat(),
        "type": "datetime" if source.kind == "postgresql" else "str",
        "ids_at_value": ["1"],
    }
    assert sink.waits == [10.0, 10.0]
    assert sink.next_at[0] == CLOCK + timedelta(seconds=10)


async def test_start_from_now_skips_existing_rows(source: Source) -> None:
    for row_id in range(1, 6):
        await source.insert(row_id, row_id)
    # LIMIT 2: finding the current maximum runs the query page after page.
    cfg = config(source.url, start_from="now", query=QUERY + " LIMIT 2")

    async def between(n: int) -> None:
        if n == 1:
            await source.insert(6, 6)
            await source.insert(7, 0)  # below the watermark: never seen

    provider = await started(cfg)
    sink = HookSink(between, stop_after_waits=2)
    try:
        await run(provider, sink)
    finally:
        await provider.shutdown()
    assert keys(sink.events) == [key(6, 6)]
    assert sink.cursors[0]["ids_at_value"] == ["5"]


async def test_rows_inserted_between_polls_become_events_exactly_once(source: Source) -> None:
    await source.insert(1, 1)

    async def between(n: int) -> None:
        if n == 1:
            await source.insert(2, 2)
            await source.insert(3, 2)
        elif n == 2:
            await source.insert(4, 3)

    provider = await started(config(source.url, batch_size=2))
    sink = HookSink(between, stop_after_waits=4)
    try:
        await run(provider, sink)
        assert keys(sink.events) == [key(1, 1), key(2, 2), key(3, 2), key(4, 3)]
        # The runtime's next attempt resumes from the recorded cursor.
        await source.insert(5, 3)
        await source.insert(6, 4)
        resumed = MemorySink(cursor=sink.cursor, clock=CLOCK, stop_after_waits=1)
        await run(provider, resumed)
    finally:
        await provider.shutdown()
    assert keys(resumed.events) == [key(5, 3), key(6, 4)]


# A LIMIT in the query is allowed if it is above the largest tie (3 rows here).
@pytest.mark.parametrize("limit", ["", " LIMIT 4"])
async def test_ties_across_a_batch_boundary_are_not_lost(source: Source, limit: str) -> None:
    for row_id in (1, 2, 3):
        await source.insert(row_id, 5)
    await source.insert(4, 6)
    provider = await started(config(source.url, query=QUERY + limit, batch_size=2))
    sink = MemorySink(clock=CLOCK, stop_after_waits=2)
    try:
        await run(provider, sink)
    finally:
        await provider.shutdown()
    assert keys(sink.events) == [key(1, 5), key(2, 5), key(3, 5), key(4, 6)]
    assert [c["ids_at_value"] for c in sink.cursors] == [["1", "2"], ["4"]]


async def test_an_update_is_a_new_event(source: Source) -> None:
    await source.insert(1, 1, payload="created")
    await source.insert(2, 2)

    async def between(n: int) -> None:
        if n == 1:
            await source.update(1, 7, payload="paid")

    provider = await started(config(source.url))
    sink = HookSink(between, stop_after_waits=2)
    try:
        await run(provider, sink)
    finally:
        await provider.shutdown()
    assert keys(sink.events) == [key(1, 1), key(2, 2), key(1, 7)]
    assert sink.events[-1].data["payload"] == "paid"


async def test_the_cursor_moves_only_after_emit_returned(source: Source) -> None:
    await source.insert(1, 1)
    await source.insert(2, 2)
    failures = [RuntimeError("signal failed")]

    def fail_once(events: Sequence[Event]) -> None:
        if failures:
            raise failures.pop()

    provider = await started(config(source.url))
    try:
        sink = MemorySink(clock=CLOCK, stop_after_waits=1, on_emit=fail_once)
        with pytest.raises(RuntimeError, match="signal failed"):
            await provider.run(sink)
        assert sink.cursor is None and sink.cursors == []
        first_try = keys(sink.events)
        sink.events.clear()
        await run(provider, sink)  # the retried attempt
    finally:
        await provider.shutdown()
    assert first_try == keys(sink.events) == [key(1, 1), key(2, 2)]
    assert sink.cursor["ids_at_value"] == ["2"]


async def test_max_rows_per_poll_spreads_rows_over_polls(source: Source) -> None:
    for row_id in range(1, 6):
        await source.insert(row_id, row_id)
    provider = await started(config(source.url, max_rows_per_poll=2))
    sink = MemorySink(clock=CLOCK, stop_after_events=5)
    try:
        await run(provider, sink)
    finally:
        await provider.shutdown()
    assert keys(sink.events) == [key(i, i) for i in range(1, 6)]
    assert len(sink.waits) == 2


async def test_bad_sql_is_a_config_error_without_the_password(source: Source) -> None:
    url = make_url(source.url)
    if source.kind == "postgresql":  # trust auth accepts any password
        url = url.set(password=PASSWORD)
    shown = url.render_as_string(hide_password=False)
    for query, words in [
        ("SELEC id FROM orders WHERE updated_at >= :cursor", "SELEC"),
        ("SELECT id, updated_at FROM nope WHERE updated_at >= :cursor", "nope"),
        ("SELECT id, nocol FROM orders WHERE updated_at >= :cursor", "nocol"),
    ]:
        provider = await started(config(shown, query=query))
        try:
            with pytest.raises(ProviderConfigError, match=words) as info:
                await provider.run(MemorySink(clock=CLOCK, stop_after_waits=1))
        finally:
            await provider.shutdown()
        assert PASSWORD not in str(info.value)


async def test_missing_result_columns_are_a_config_error(source: Source) -> None:
    provider = await started(config(source.url, cursor_column="changed_at"))
    try:
        with pytest.raises(ProviderConfigError, match="no column changed_at.*returns id"):
            await provider.run(MemorySink(clock=CLOCK, stop_after_waits=1))
    finally:
        await provider.shutdown()


async def test_an_unordered_query_is_a_config_error(source: Source) -> None:
    await source.insert(1, 2)
    await source.insert(2, 1)
    query = "SELECT id, updated_at FROM orders WHERE updated_at >= :cursor ORDER BY id"
    provider = await started(config(source.url, query=query))
    try:
        with pytest.raises(ProviderConfigError, match="ORDER BY updated_at"):
            await provider.run(MemorySink(clock=CLOCK, stop_after_waits=1))
    finally:
        await provider.shutdown()


async def test_password_from_the_secret(pg_source: Source) -> None:
    source = pg_source
    await source.insert(1, 1)
    provider = await started(config(source.url), {"password": PASSWORD})
    try:
        assert provider.engine.url.password == PASSWORD
        sink = MemorySink(clock=CLOCK, stop_after_waits=0)
        await run(provider, sink)
        assert keys(sink.events) == [key(1, 1)]
        assert PASSWORD not in sink.events[0].source
    finally:
        await provider.shutdown()
    bad = await started(
        config(source.url, query=QUERY.replace("FROM orders", "FROM nope")), {"password": PASSWORD}
    )
    try:
        with pytest.raises(ProviderConfigError) as info:
            await bad.run(MemorySink(clock=CLOCK, stop_after_waits=0))
    finally:
        await bad.shutdown()
    assert PASSWORD not in str(info.value)
    assert "***" in str(info.value)


def _closed_port() -> int:
    return free_port()


async def test_a_closed_port_is_transient() -> None:
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{_closed_port()}/test"
    provider = await started(config(url))
    try:
        with pytest.raises(ProviderTransientError) as info:
            await provider.run(MemorySink(clock=CLOCK, stop_after_waits=0))
    finally:
        await provider.shutdown()
    assert PASSWORD not in str(info.value)


async def test_an_unknown_database_is_a_config_error() -> None:
    url = await _pg_database()
    await _drop_pg(url)
    provider = await started(config(url))
    try:
        with pytest.raises(ProviderConfigError, match="does not exist"):
            await provider.run(MemorySink(clock=CLOCK, stop_after_waits=0))
    finally:
        await provider.shutdown()


async def test_an_unreadable_cursor_is_a_config_error(tmp_path: Path) -> None:
    provider = await started(config(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    try:
        with pytest.raises(ProviderConfigError, match="unreadable"):
            await provider.run(MemorySink(cursor="2024-01-01", clock=CLOCK))
    finally:
        await provider.shutdown()


def test_registered() -> None:
    info = get_provider("sql_poll")
    assert info.source is SqlPollProvider
    assert info.config_model is SqlPollConfig
    assert info.optional_secrets == {"password"}


def _errors(**overrides: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        config(**{"url": "sqlite+aiosqlite:///x.db", **overrides})
    assert PASSWORD not in str(info.value)
    return {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}


def test_config_rejects_a_query_without_cursor() -> None:
    errors = _errors(query="SELECT id, updated_at FROM orders")
    assert "must use the bound parameter :cursor" in errors["query"]
    errors = _errors(query="SELECT id FROM t WHERE a >= :cursor AND b = :other")
    assert ":other" in errors["query"]
    errors = _errors(query="SELECT id FROM t WHERE a >= :cursor::timestamptz")
    assert "CAST(:cursor AS type)" in errors["query"]


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1/db",
        f"mysql+aiomysql://root:{PASSWORD}@127.0.0.1/db",
        "sqlite:///x.db",
        "sqlite+aiosqlite://",
        "not a url",
    ],
)
def test_config_rejects_unsupported_urls(url: str) -> None:
    errors = _errors(url=url)
    assert list(errors) == ["url"]


def test_config_interval_and_fields() -> None:
    cfg = config("sqlite+aiosqlite:///x.db", interval="1m30s")
    assert cfg.interval == timedelta(seconds=90)
    assert config("sqlite+aiosqlite:///x.db", interval=2).interval == timedelta(seconds=2)
    assert config("sqlite+aiosqlite:///x.db", interval="PT5S").interval == timedelta(seconds=5)
    assert "interval" in _errors(interval="500ms")
    assert "interval" in _errors(interval="soon")
    assert "max_rows_per_poll" in _errors(max_rows_per_poll=0)
    assert "start_from" in _errors(start_from="yesterday")
    assert "extra" in _errors(extra=1)
    cfg = config("sqlite+aiosqlite:///x.db", initial_cursor=0)
    assert cfg.initial_cursor == 0 and isinstance(cfg.initial_cursor, int)
    assert SqlPollConfig.model_fields["start_from"].default == "now"
    for name, field in SqlPollConfig.model_fields.items():
        assert field.description, name


async def test_local_files_and_private_hosts_need_the_owners_allowlist(tmp_path: Path) -> None:
    closed = SourceContext(trigger_id="t", trigger_name="n", owner="o")
    for url in (
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    ):
        provider = SqlPollProvider()
        with pytest.raises(ProviderConfigError, match="allow"):
            await provider.init(config(url), {}, closed)
    other_folder = SourceContext("t", "n", "o", network_allowlist=(f"file:{tmp_path / 'sub'}",))
    with pytest.raises(ProviderConfigError, match="outside the folders"):
        await SqlPollProvider().init(
            config(f"sqlite+aiosqlite:///{tmp_path / 'sub' / '..' / 'x.db'}"), {}, other_folder
        )
