"""The provider SDK: what a source provider (cron, polling, streams, plugins) implements.

A provider is a plain async class, testable without Temporal::

    class MyProvider(SourceProvider):
        name = "my-provider"
        Config = MyConfig                      # a pydantic model, validated by the API

        async def init(self, config, secrets, context): ...
        async def run(self, sink): ...          # loop: await sink.emit(events, cursor=...)
        async def shutdown(self): ...

The runtime (``activities/source.py``, with ``activities/pull_sink.py``) calls ``init``
once, then ``run`` until it returns or the runtime stops it, then always ``shutdown``.
Inside ``run`` a provider:

- reads ``sink.cursor`` to resume where the last run stopped (``None`` on a fresh trigger);
- calls ``await sink.emit(events, cursor=c)``: it returns once the events are persisted in
  the trigger workflow's history; only then is ``c`` recorded as the resume point. Acknowledge
  upstream (commit an offset, delete a message) only after ``emit`` returned;
- calls ``await sink.wait(seconds, next_at=...)`` to idle; the runtime keeps heartbeating;
- raises ``ProviderConfigError`` for what retrying cannot fix (bad URL, refused credentials,
  an unparseable schedule) and ``ProviderTransientError`` (or any other exception) for what
  may pass (a server down, a timeout): the runtime retries with capped backoff and jitter.

``emit`` and ``wait`` raise ``SourceStop`` when the runtime wants the loop to end (its
lifetime is up or the trigger was disabled): let it propagate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from triggers.core.events import Event

Cursor = Any  # JSON-serialisable: a watermark, an offset, a timestamp string, a dict...


class ProviderError(Exception):
    """Base of the errors a provider raises on purpose. Messages are shown to users: never
    put a secret in one."""


class ProviderConfigError(ProviderError):
    """Retrying cannot help: the trigger is marked ``failed`` until its config changes."""


class ProviderTransientError(ProviderError):
    """May pass: retried with capped exponential backoff and jitter (``degraded``)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceStop(Exception):  # noqa: N818  (control flow, not an error)
    """Raised by the sink when the loop should end; providers let it propagate."""


@dataclass(frozen=True)
class SourceContext:
    """Facts about the trigger a provider may need; never secrets (those come separately)."""

    trigger_id: str
    trigger_name: str
    owner: str
    # Hosts or networks (CIDR) the owner allowed outbound requests to, beside public ones.
    network_allowlist: tuple[str, ...] = field(default_factory=tuple)


class EventSink(Protocol):
    """What a provider's ``run`` talks to."""

    @property
    def cursor(self) -> Cursor:
        """Where to resume: the last cursor recorded, or ``None`` on a fresh trigger."""

    async def emit(self, events: Sequence[Event], *, cursor: Cursor = None) -> None:
        """Deliver ``events`` (persisted when this returns) and then record ``cursor``."""

    async def checkpoint(self, cursor: Cursor) -> None:
        """Record a cursor without events (e.g. a skipped schedule slot)."""

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        """Idle for ``seconds`` (heartbeating); ``next_at`` is shown as the next fire/poll."""

    def now(self) -> datetime:
        """The current time (UTC, timezone-aware); tests may control it."""


class SourceProvider(ABC):
    """Base class of providers that run a loop (everything but push providers like webhooks)."""

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    required_secrets: ClassVar[frozenset[str]] = frozenset()
    optional_secrets: ClassVar[frozenset[str]] = frozenset()
    # Providers whose secrets are named by the user (e.g. referenced from templates) accept
    # any name matching this regular expression, beside ``required | optional``.
    secret_pattern: ClassVar[str | None] = None
    # The config fields that decide where the source connects and where its secrets go
    # (URLs, hosts, broker addresses, templates that carry a secret). Anyone but the owner
    # who changes one must give the secrets again in the same request, and the source then
    # goes out through that user's network allowlist. ``None`` (nothing declared, e.g. a
    # plugin that predates this): every field counts.
    destination_fields: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def destinations(cls, config: BaseModel) -> dict[str, Any]:
        """The values of ``destination_fields`` (JSON), compared before and after a change.
        Override to narrow a field to its part that matters (e.g. only the headers that
        carry a secret)."""
        return destination_values(config, cls.destination_fields)

    # The config field that holds the overlap policy ("allow" / "skip"), enforced by the
    # trigger workflow; ``None``: the provider has no such policy and every run starts.
    overlap_field: ClassVar[str | None] = None

    # That pattern in words, for the 422 that refuses a name (e.g. "letters, digits and _").
    secret_pattern_help: ClassVar[str | None] = None

    @abstractmethod
    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        """Check and keep the config; open clients. Raise ``ProviderConfigError`` if invalid."""

    @abstractmethod
    async def run(self, sink: EventSink) -> None:
        """Produce events until ``SourceStop`` (or return when the source is exhausted)."""

    async def shutdown(self) -> None:  # noqa: B027  (optional hook)
        """Close clients. Called once, whatever happened before."""


def destination_values(config: BaseModel, fields: tuple[str, ...] | None) -> dict[str, Any]:
    dumped = config.model_dump(mode="json")
    if fields is None:
        return dict(dumped)
    return {name: dumped.get(name) for name in fields}


def event_time(value: datetime) -> str:
    """CloudEvents ``time``: RFC 3339 in UTC."""
    return value.isoformat()
