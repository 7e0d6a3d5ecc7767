"""The configuration of a SQL polling trigger (``SqlPollConfig``) and its rules.

What a user writes and the API validates: the database URL (two async drivers; no
in-memory SQLite), the query with its one bound parameter ``:cursor``, the cursor and id
columns, and the paging options. The provider that runs it is
``triggers.providers.sql_poll``, whose docstring explains the cursor and the event keys.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from triggers.core.durations import parse_duration

_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")


def _parse_duration(value: Any) -> Any:
    """``"10s"``, ``"1m30s"``, ``"1500ms"``; numbers (seconds) and ISO 8601 go to pydantic."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return parse_duration(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class SqlPollConfig(BaseModel):
    """Configuration of a SQL polling trigger. The database password may be given as the
    ``password`` secret instead of inside ``url``."""

    # Validation errors must not echo a URL that carries a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(
        json_schema_extra={"pattern": "^(postgresql\\+asyncpg://\\S+|sqlite\\+aiosqlite:///\\S+)$"},
        description="Async SQLAlchemy URL: postgresql+asyncpg://user@host:5432/db or "
        "sqlite+aiosqlite:///path/to/file.db. Prefer the 'password' secret to a password here.",
    )
    query: str = Field(
        description="SELECT with the bound parameter :cursor, ordered by the cursor column, e.g. "
        "SELECT id, updated_at, payload FROM orders WHERE updated_at >= :cursor "
        "ORDER BY updated_at, id. Use >= (not >): rows already emitted at the last cursor "
        "value are skipped. No LIMIT is needed: the provider pages by itself."
    )
    cursor_column: str = Field(description="Result column that orders rows, e.g. updated_at.")
    id_column: str = Field(description="Result column that identifies a row, e.g. id.")
    initial_cursor: int | float | str = Field(
        description="The lowest cursor value, e.g. '1970-01-01T00:00:00' or 0: where "
        "start_from 'beginning' starts, and where 'now' starts looking for the current "
        "maximum. On PostgreSQL an ISO date(time) string is bound as a timestamp (naive "
        "fits both timestamp and timestamptz); for a text column use ''."
    )
    start_from: Literal["now", "beginning"] = Field(
        default="now",
        description="'now': the first poll only moves the cursor to the current maximum; "
        "'beginning': every existing row becomes an event.",
    )
    interval: Duration = Field(
        default=timedelta(seconds=60), description="Time between polls, e.g. '10s', '5m'."
    )
    batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Rows per page, delivered as one batch."
    )
    max_rows_per_poll: int = Field(
        default=10_000, ge=1, description="At most this many rows are emitted per poll."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db"
            ) from None
        if url.drivername not in _DRIVERS:
            raise ValueError(
                f"driver {url.drivername!r} is not supported; use one of {', '.join(_DRIVERS)}"
            )
        if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be polled; give a file path")
        return value

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str) -> str:
        if ":cursor::" in value:
            raise ValueError("write CAST(:cursor AS type): ':cursor::type' is not read as :cursor")
        try:
            params = set(text(value).compile().params)
        except SQLAlchemyError as exc:
            raise ValueError(f"cannot read the query: {exc}") from None
        if "cursor" not in params:
            raise ValueError("the query must use the bound parameter :cursor")
        if params - {"cursor"}:
            others = ", ".join(f":{p}" for p in sorted(params - {"cursor"}))
            raise ValueError(f"only :cursor is bound; unknown parameters {others} (escape as \\:)")
        return value

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        return value
