"""The configuration of a Redis Streams trigger (``RedisStreamsConfig``) and its rules.

What a user writes and the API validates: the server URL (never with a password: that is
the ``password`` secret), the streams, the consumer group and where a new group starts, how
an entry becomes the event's data, and the read and reclaim options. Every field has a
bound. The provider that runs it is ``triggers.providers.redis_streams``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from triggers.core.durations import DURATION_PATTERN, parse_duration
from triggers.providers.stream import StreamLimits

SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379
MAX_URL_CHARS = 2048
MAX_STREAMS = 16
MAX_NAME_CHARS = 256
MAX_GROUP_CHARS = 128
MAX_DB = 999
MIN_BLOCK_MS, MAX_BLOCK_MS = 10, 60_000
MAX_COUNT = 1000
MIN_IDLE, MAX_IDLE = timedelta(milliseconds=100), timedelta(days=7)
MAX_DELIVERIES = 1000


def _parse_duration(value: Any) -> Any:
    """``"60s"``, ``"5m"``, ``"500ms"``; numbers (seconds) and ISO 8601 go to pydantic."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return parse_duration(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
StreamName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


@dataclass(frozen=True)
class Address:
    """Where a validated URL points: what the network guard checks and redis-py connects
    to. Never holds a password (a URL with one is refused)."""

    scheme: str
    host: str
    port: int
    db: int
    username: str | None

    @property
    def display(self) -> str:
        """The URL as messages and the event ``source`` show it."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.db}"


def parse_url(value: str) -> Address:
    """``redis://[user@]host[:port][/db]`` (or ``rediss://`` for TLS) as an ``Address``.

    Raises:
        ValueError: not such a URL, or it carries a password, a query or a fragment. The
            message never repeats the URL (it might hold a password).
    """
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("not a URL like redis://host:6379/0") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"the URL must start with {' or '.join(s + '://' for s in SCHEMES)}")
    if parts.password is not None:
        raise ValueError(
            "the URL must not carry a password: give it as the 'password' secret "
            "(redis://host:6379/0, or redis://user@host:6379/0 with an ACL user)"
        )
    if not parts.hostname:
        raise ValueError("the URL names no host, e.g. redis://host:6379/0")
    if parts.query or parts.fragment:
        raise ValueError("the URL takes no query or fragment: redis://host:6379/0")
    path = parts.path.strip("/")
    if path and not (path.isdigit() and int(path) <= MAX_DB):
        raise ValueError(f"the URL's path is the database number, 0 to {MAX_DB}")
    return Address(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        db=int(path or 0),
        username=parts.username or None,
    )


class RedisStreamsConfig(StreamLimits):
    """Configuration of a Redis Streams trigger. The server's password (or an ACL user's)
    is the ``password`` secret, never part of ``url``."""

    # Validation errors must not echo a URL that (wrongly) carries a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(
        max_length=MAX_URL_CHARS,
        json_schema_extra={"pattern": "^rediss?://[^:@/?#]*@?[^@/?#]+(/[0-9]{1,3})?/?$"},
        description="redis://host:6379/0 (rediss:// for TLS; redis://user@host/0 for an "
        "ACL user). No password here: give it as the 'password' secret.",
    )
    streams: list[StreamName] = Field(
        min_length=1,
        max_length=MAX_STREAMS,
        description=f"Stream keys to consume, 1 to {MAX_STREAMS}, each at most "
        f"{MAX_NAME_CHARS} characters.",
    )
    group: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_GROUP_CHARS,
        description="Consumer group; default 'triggers:<trigger id>'. Created on each "
        "stream if missing (with MKSTREAM).",
    )
    start: Literal["$", "0"] = Field(
        default="$",
        description="Where a new group starts: '$' only entries added from now on, '0' "
        "every entry already in the stream. An existing group keeps its position.",
    )
    value_format: Literal["entry", "json", "text"] = Field(
        default="entry",
        description="The event's data: 'entry' the whole entry as a JSON object of its "
        "fields (UTF-8 text values); 'json' or 'text' the one field 'value_field', decoded.",
    )
    value_field: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="The field decoded by value_format 'json' or 'text', e.g. 'payload'.",
    )
    block_ms: int = Field(
        default=5000,
        ge=MIN_BLOCK_MS,
        le=MAX_BLOCK_MS,
        description="How long one read waits for new entries (XREADGROUP BLOCK), in ms.",
    )
    count: int = Field(
        default=100, ge=1, le=MAX_COUNT, description="Entries per read (XREADGROUP COUNT)."
    )
    min_idle: Duration = Field(
        default=timedelta(seconds=60),
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="An entry delivered to a consumer that has not acked it for this long "
        "(a dead worker's) is reclaimed (XAUTOCLAIM) and delivered again, e.g. '60s'. "
        "Keep it above the longest time an event may take to be accepted.",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=MAX_DELIVERIES,
        description="An entry delivered more often than this without being acked is "
        "dead-lettered and acked.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_url(value)
        return value

    @field_validator("streams")
    @classmethod
    def _check_streams(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a stream is listed twice")
        return value

    @field_validator("min_idle")
    @classmethod
    def _check_min_idle(cls, value: timedelta) -> timedelta:
        if not MIN_IDLE <= value <= MAX_IDLE:
            raise ValueError("min_idle must be between 100ms and 7d")
        return value

    @model_validator(mode="after")
    def _check_value(self) -> RedisStreamsConfig:
        if self.value_format == "entry" and self.value_field is not None:
            raise ValueError("value_field is only used with value_format 'json' or 'text'")
        if self.value_format != "entry" and self.value_field is None:
            raise ValueError(f"value_format {self.value_format!r} needs value_field")
        return self

    @property
    def address(self) -> Address:
        return parse_url(self.url)

    def group_name(self, trigger_id: str) -> str:
        return self.group or f"triggers:{trigger_id}"
