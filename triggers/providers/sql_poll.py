"""SQL polling provider: new and changed rows of a query become events.

The user's query takes one bound parameter, ``:cursor``, and returns rows ordered by the
cursor column (a timestamp, a number or text), for example::

    SELECT id, updated_at, payload FROM orders
    WHERE updated_at >= :cursor ORDER BY updated_at, id

The provider pages by itself: it streams the query from the last cursor value, skips rows it
already emitted, and stops reading after ``batch_size`` new rows; it closes the result (no
read transaction stays open while the events are delivered), emits the batch with the
batch's last cursor value, and runs the query again from there, until no new row comes back
or ``max_rows_per_poll`` rows were emitted; then it waits ``interval``.

**Cursor** (what the runtime stores between runs)::

    {"value": "2024-05-01T12:00:00+00:00", "type": "datetime", "ids_at_value": ["41", "42"]}

``type`` (datetime, date, int, float, decimal, str) says how ``value`` is turned back into
the object bound to ``:cursor``. ``ids_at_value`` are the ids already emitted whose cursor
equals ``value``: with ``>=`` those rows come back on the next page and are skipped, so rows
that share a cursor value across a batch boundary are neither lost nor repeated. With ``>``
the rest of such a tie is lost: use ``>=``. A LIMIT is not needed; a query that has one must
keep it above the largest number of rows sharing one cursor value, or paging stalls there.
Each page re-reads the rows already emitted at the boundary value and the cursor lists their
ids, so a bulk update that stamps many rows with one ``now()`` costs re-reads and cursor size.

**Event key** ``f"{id}@{cursor value}"``: an update that moves the row's cursor value (a new
``updated_at``) is a new event, while re-reading the same version (after a crash, a retried
emit, or at the ``>=`` boundary) yields the same key and is deduplicated by the run's ID.

The cursor is a watermark: a row committed late with a cursor value below it (a long
transaction that set ``updated_at`` before another one committed) is not seen. Use a column
set at commit time, or a sequence, where that matters.

The URL's password may come from the ``password`` secret instead; messages and the event
``source`` never include it. The configuration and its validation are in
``triggers.providers.sql_poll_config``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import RowMapping, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from triggers.core.events import Event
from triggers.infra import net
from triggers.providers import ProviderInfo
from triggers.providers.base import (
    Cursor,
    EventSink,
    ProviderConfigError,
    ProviderError,
    ProviderTransientError,
    SourceContext,
    SourceProvider,
    event_time,
)
from triggers.providers.sql_poll_config import SqlPollConfig

log = logging.getLogger(__name__)

PASSWORD = "password"
_CONNECT_TIMEOUT = 10.0
_COMMAND_TIMEOUT = 60.0
_SKIP_PAGE = 1000  # rows per page while start_from "now" looks for the current maximum
_STREAM = {"yield_per": 100}
_PG_ENGINE: dict[str, Any] = {
    "pool_size": 1,
    "max_overflow": 1,
    "pool_pre_ping": True,
    "pool_recycle": 1800,
    # The poll only reads: a query that writes fails instead of changing data.
    "execution_options": {"postgresql_readonly": True},
    "connect_args": {"timeout": _CONNECT_TIMEOUT, "command_timeout": _COMMAND_TIMEOUT},
}
# SQLSTATE classes that retrying cannot fix: feature not supported, data exception (includes
# asyncpg refusing a cursor of the wrong type), read-only transaction, authorization, unknown
# database or schema, syntax error or access rule violation (unknown table or column).
_PERMANENT_SQLSTATE = ("0A", "22", "25", "28", "3D", "3F", "42")


def json_safe(value: Any) -> Any:
    """A column value as JSON: datetimes ISO 8601, Decimal as text, bytes as base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return value.total_seconds() if isinstance(value, timedelta) else str(value)  # Decimal, UUID


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Cursor types and how a stored value becomes the bound object again; checked in order
# (a datetime is a date too).
_DECODE: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "datetime": (datetime, datetime.fromisoformat),
    "date": (date, date.fromisoformat),
    "int": (int, int),
    "float": (float, float),
    "decimal": (Decimal, Decimal),
    "str": (str, str),
}


def _kind(value: Any) -> str:
    """The cursor type of a column value; raises for values that cannot order rows."""
    for kind, (cls, _) in _DECODE.items():
        if isinstance(value, cls) and not isinstance(value, bool):
            return kind
    raise ProviderConfigError(
        f"cursor_column values of type {type(value).__name__} cannot be a cursor; "
        "use a timestamp, date, number or text column"
    )


@dataclass(frozen=True)
class Position:
    """Where the next poll starts: a cursor value and the ids already emitted at it."""

    value: Any
    kind: str
    ids_at_value: frozenset[str]

    def dump(self) -> dict[str, Any]:
        return {
            "value": json_safe(self.value),
            "type": self.kind,
            "ids_at_value": sorted(self.ids_at_value),
        }

    @classmethod
    def load(cls, raw: Cursor) -> Position:
        try:
            kind = str(raw["type"])
            value = _DECODE[kind][1](raw["value"])
            return cls(value, kind, frozenset(map(str, raw["ids_at_value"])))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise ProviderConfigError(f"unreadable sql_poll cursor: {raw!r}") from None

    def seen(self, value: Any, row_id: str) -> bool:
        return row_id in self.ids_at_value and value == self.value


class SqlPollProvider(SourceProvider):
    """Polls a SQL query; see the module docstring for the cursor and the event keys."""

    name = "sql_poll"
    Config = SqlPollConfig
    optional_secrets = frozenset({PASSWORD})
    # The URL names the server the password is sent to.
    destination_fields = ("url",)

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        cfg = SqlPollConfig.model_validate(config.model_dump())
        self.config = cfg
        url: URL = make_url(cfg.url)
        if secrets.get(PASSWORD):
            url = url.set(password=secrets[PASSWORD])
        self._password = url.password if isinstance(url.password, str) else None
        self._display = url.render_as_string(hide_password=True)
        self.source = "sql:" + url._replace(password=None).render_as_string(hide_password=False)
        self._statement = text(cfg.query)
        # The same guard as HTTP: no private hosts, and no local files (the service's own
        # database among them) unless the owner allowed them.
        if url.get_backend_name() == "sqlite":
            net.Allowlist.parse(context.network_allowlist).check_file(url.database or "")
        else:
            await net.check_host(
                url.host or "localhost", url.port or 5432, context.network_allowlist
            )
        options: dict[str, Any] = {"connect_args": {"timeout": _CONNECT_TIMEOUT}}
        if url.get_backend_name() == "postgresql":
            options = _PG_ENGINE
        self._engine = create_async_engine(url, **options)
        log.info(
            "sql_poll %s: polling %s every %s", context.trigger_id, self._display, cfg.interval
        )

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def shutdown(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            await engine.dispose()

    async def run(self, sink: EventSink) -> None:
        cfg = self.config
        if sink.cursor is not None:
            position = Position.load(sink.cursor)
        else:
            position = self._initial()
            if cfg.start_from == "now":
                position = await self._skip_to_end(position)
                await sink.checkpoint(position.dump())
                await self._wait(sink)
        while True:
            position = await self._poll(sink, position)
            await self._wait(sink)

    async def _wait(self, sink: EventSink) -> None:
        seconds = self.config.interval.total_seconds()
        await sink.wait(seconds, next_at=sink.now() + self.config.interval)

    def _initial(self) -> Position:
        value = self.config.initial_cursor
        # asyncpg binds by the server's parameter type and refuses a string for a timestamp;
        # SQLite compares stored text, so there the string stays as given.
        if isinstance(value, str) and self._engine.dialect.name == "postgresql":
            with contextlib.suppress(ValueError):
                if _ISO_DATE.match(value):
                    return Position(datetime.fromisoformat(value), "datetime", frozenset())
        return Position(value, _kind(value), frozenset())

    async def _poll(self, sink: EventSink, position: Position) -> Position:
        budget = self.config.max_rows_per_poll
        while budget > 0:
            fresh = await self._page(position, min(budget, self.config.batch_size))
            if not fresh:
                break
            after = self._after(position, fresh)
            now = event_time(sink.now())
            # The cursor is recorded by emit itself, only once the events are persisted.
            await sink.emit([self._event(row, now) for row in fresh], cursor=after.dump())
            position = after
            budget -= len(fresh)
        return position

    async def _skip_to_end(self, position: Position) -> Position:
        while fresh := await self._page(position, _SKIP_PAGE):
            position = self._after(position, fresh)
        return position

    async def _page(self, position: Position, limit: int) -> list[RowMapping]:
        """Up to ``limit`` rows not emitted yet, from a new execution of the query."""
        cursor_col, id_col = self.config.cursor_column, self.config.id_column
        fresh: list[RowMapping] = []
        previous: Any = None
        try:
            async with self._engine.connect() as conn:
                result = await conn.stream(
                    self._statement, {"cursor": position.value}, execution_options=_STREAM
                )
                try:
                    columns = list(result.keys())
                    if missing := {cursor_col, id_col} - set(columns):
                        raise ProviderConfigError(
                            f"the query returns no column {', '.join(sorted(missing))}; "
                            f"it returns {', '.join(columns)}"
                        )
                    async for row in result.mappings():
                        value = row[cursor_col]
                        self._check_order(previous, value)
                        previous = value
                        if not position.seen(value, str(row[id_col])):
                            fresh.append(row)
                            if len(fresh) >= limit:
                                break
                finally:
                    await result.close()
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            # ``from None``: the driver's error (its text may quote the password) must not
            # ride along as the cause of what the runtime logs and reports.
            raise self._error(exc) from None
        return fresh

    def _check_order(self, previous: Any, value: Any) -> None:
        column = self.config.cursor_column
        if value is None:
            raise ProviderConfigError(f"the query returned a NULL {column}")
        try:
            unordered = previous is not None and value < previous
        except TypeError:
            unordered = False
        if unordered:
            raise ProviderConfigError(f"the query must ORDER BY {column}")

    def _after(self, position: Position, fresh: Sequence[RowMapping]) -> Position:
        cursor_col, id_col = self.config.cursor_column, self.config.id_column
        last = fresh[-1][cursor_col]
        ids = {str(r[id_col]) for r in fresh if r[cursor_col] == last}
        if last == position.value:
            ids |= position.ids_at_value
        return Position(last, _kind(last), frozenset(ids))

    def _event(self, row: RowMapping, now: str) -> Event:
        row_id = str(row[self.config.id_column])
        key = f"{row_id}@{json_safe(row[self.config.cursor_column])}"
        return Event(
            id=key,
            key=key,
            source=self.source,
            type="sql_poll.row",
            time=now,
            subject=row_id,
            data={str(column): json_safe(value) for column, value in row.items()},
        )

    def _error(self, exc: BaseException) -> ProviderError:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        detail = (str(orig) or type(orig).__name__).splitlines()[0][:500]
        if self._password:
            detail = detail.replace(self._password, "***")
        message = f"sql_poll {self._display}: {detail}"
        if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
            sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            if isinstance(sqlstate, str):
                if sqlstate.startswith(_PERMANENT_SQLSTATE):
                    return ProviderConfigError(message)
                return ProviderTransientError(message)
            if self._engine.dialect.name == "sqlite" and not re.search(
                r"locked|busy|disk i/o", detail, re.IGNORECASE
            ):
                return ProviderConfigError(message)
        return ProviderTransientError(message)


info = ProviderInfo.of(SqlPollProvider)
