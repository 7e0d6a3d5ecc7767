"""The push-stream provider SDK: what a broker provider (Kafka, Redis Streams, SQS, ...)
implements. The stream runtime (``activities/stream.py``) owns the loop, the acks, the
backpressure and the dead letters, so a provider cannot get them wrong::

    class MyStream(StreamProvider):
        name = "my-stream"
        Config = MyConfig
        key_format = "<queue>/<message-id>"

        async def init(self, config, secrets, context): ...   # connect, join the group
        async def receive(self, max_messages): ...             # block until messages come
        def to_event(self, message): ...                       # pure: bytes -> Event
        async def ack(self, messages): ...                     # commit / XACK / delete
        async def shutdown(self): ...                          # leave the group, close

The runtime calls ``configure`` (no I/O), then ``init`` once, then loops: wait while
backpressure says so, ``receive`` (raced against the stop, so a blocked receive is
cancelled within a second or two),
``to_event`` for each message, signal the events to the trigger workflow in batches, and
``ack`` each batch's messages right after the signal that carries them was persisted, in
the order ``receive`` returned them. A message that cannot become an event (``to_event``
raised ``PoisonMessage``, it is over the size limit, or it was delivered more than
``max_deliveries`` times) is written to the dead-letter store and then acked. Messages that
were received but not persisted are passed to ``nack`` (or simply never acked, so the
broker delivers them again). ``shutdown`` is always called, whatever happened.

A message's ``key`` is the event key that deduplicates its run: it must be stable across
redeliveries (``<topic>/<partition>/<offset>``, ``<stream>/<entry-id>``), never a
per-delivery id.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from triggers.core.events import Event
from triggers.providers.base import ProviderError, SourceContext, SourceProvider

# Bytes of one message's value; larger ones are dead-lettered (the raw bytes kept up to
# ``DEAD_LETTER_RAW_LIMIT``).
MAX_MESSAGE_BYTES = 1024 * 1024
DEAD_LETTER_RAW_LIMIT = 64 * 1024
# Messages received and not yet acked, at most; the trigger workflow's pending events at
# which receiving pauses (it resumes at half of it). ``StreamLimits`` fields set them.
DEFAULT_MAX_IN_FLIGHT = 100
MAX_IN_FLIGHT_LIMIT = 1_000
DEFAULT_PAUSE_PENDING = 1_000
MAX_PAUSE_PENDING = 100_000


class StreamLimits(BaseModel):
    """The runtime's bounds as config fields: a stream provider's config inherits them, so
    a user can set them per trigger (the runtime reads them by name)."""

    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        le=MAX_IN_FLIGHT_LIMIT,
        description="At most this many messages received and not yet accepted (acked).",
    )
    pause_pending: int = Field(
        default=DEFAULT_PAUSE_PENDING,
        ge=1,
        le=MAX_PAUSE_PENDING,
        description="Receiving pauses while the trigger has this many events waiting to "
        "start runs (backpressure); it resumes at half of it.",
    )


class PoisonMessage(ProviderError):  # noqa: N818  (a verdict on a message, not a failure)
    """``to_event`` cannot make an event of this message (undecodable, wrong shape). The
    message is dead-lettered with this reason and acked; the stream goes on."""


@dataclass(frozen=True)
class Message:
    """One message as the broker delivered it."""

    # The stable event key (see the module docstring); also the dead letter's position.
    key: str
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    # When the broker says the message was produced (UTC); None: the runtime's now.
    time: datetime | None = None
    # Deliveries so far, where the broker counts them (Redis XPENDING, SQS receive count).
    attempts: int = 1
    # Whatever ``ack`` needs (an offset, an entry id, a receipt handle). Not persisted.
    token: Any = None
    # Broker facts ``to_event`` may put into the event (partition, message key, subject).
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StreamHealth:
    """What a provider can tell about its position; ``None`` where the broker cannot."""

    # Messages behind the newest (Kafka: end minus committed offsets; Redis: pending).
    lag: int | None = None
    pending: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # Seconds since the oldest message the broker holds for this consumer that is not
    # accepted yet (Redis: the oldest entry delivered and not acked), where it can tell.
    oldest_age_seconds: float | None = None


class StreamProvider(SourceProvider):
    """Base class of push-stream providers. Implement ``receive``, ``to_event`` and
    ``ack``; the runtime supplies ``run``."""

    # The shape of this provider's event keys, for the documentation's table.
    key_format: ClassVar[str]
    # Deliveries after which a message that keeps failing is dead-lettered (when the
    # broker counts deliveries); a config field of this name overrides it.
    max_deliveries: ClassVar[int] = 5

    # The validated config and the trigger's facts ``to_event`` reads; set by ``configure``.
    config: BaseModel
    context: SourceContext

    def configure(self, config: BaseModel, context: SourceContext) -> None:
        """Keep the validated config, without I/O: all ``to_event`` may need. The runtime
        calls it before ``init``; the API calls only this (on a new instance, never
        connected) to redrive a dead letter under the trigger's current config. Override
        to derive more from the config (call the base)."""
        self.config = config
        self.context = context

    @abstractmethod
    async def receive(self, max_messages: int) -> Sequence[Message]:
        """Wait for and return up to ``max_messages`` messages, in the order they must be
        acked. May block; the runtime cancels it when the source must stop. Raise
        ``ProviderTransientError`` on a broken connection (the runtime reconnects with
        backoff by calling ``init`` on a new instance)."""

    @abstractmethod
    def to_event(self, message: Message) -> Event:
        """The event of one message; pure and synchronous (the API calls it too, to redrive
        a dead letter under the current config, after ``configure`` only: read nothing
        but ``self.config``, ``self.context`` and the message; a dead letter keeps the
        message's ``meta`` as JSON, so keep it to JSON scalars). Raise ``PoisonMessage``
        if it cannot be."""

    @abstractmethod
    async def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages whose events were persisted (commit, XACK, delete)."""

    async def nack(self, messages: Sequence[Message]) -> None:  # noqa: B027  (optional)
        """Give messages back for redelivery (received, never persisted). Default: nothing,
        the broker redelivers what was not acked."""

    async def health(self) -> StreamHealth:
        """Lag and pending counts where the broker can tell; called every few seconds."""
        return StreamHealth()

    async def run(self, sink: Any) -> None:  # the runtime's loop replaces this
        raise NotImplementedError("stream providers are run by the stream runtime")


def message_key(*parts: object) -> str:
    """An event key from its parts: ``message_key("orders", 0, 42) == "orders/0/42"``."""
    return "/".join(str(part) for part in parts)
