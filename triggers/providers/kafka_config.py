"""The configuration of a Kafka trigger (``KafkaConfig``) and its rules.

What a user writes and the API validates: where the brokers are, what to consume (a list
of topics or a pattern), the consumer group and where a new group starts, how a message's
value becomes the event's data, SASL and TLS. Every field is bounded where it enters. The
SASL password is never part of the config: it is the ``sasl_password`` secret. The provider
that runs it is ``triggers.providers.kafka``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from triggers.providers.stream import StreamLimits

MAX_BOOTSTRAP_SERVERS = 16
MAX_TOPICS = 100
MAX_CA_CHARS = 64 * 1024
# Kafka's own limits: topic names of at most 249 characters of this alphabet; group ids
# are free text, bounded here.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253}):(?P<port>\d{1,5})")

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def split_host_port(server: str) -> tuple[str, int]:
    """``"broker-1:9092"`` -> ``("broker-1", 9092)``; ``"[::1]:9092"`` -> ``("::1", 9092)``."""
    match = _HOST_PORT.fullmatch(server)
    if match is None:
        raise ValueError(f"{server[:300]!r} is not host:port")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} of {server!r} is out of range")
    return match["host"].strip("[]"), port


class KafkaConfig(StreamLimits):
    """Configuration of a Kafka trigger. Give ``topics`` or ``topic_pattern``, not both."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    bootstrap_servers: list[str] = Field(
        min_length=1,
        max_length=MAX_BOOTSTRAP_SERVERS,
        description="Brokers to bootstrap from, as host:port, e.g. ['kafka-1:9092'].",
    )
    topics: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TOPICS,
        description="Topics to consume, e.g. ['orders']. Or give topic_pattern.",
    )
    topic_pattern: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="A regular expression; every topic whose whole name matches is consumed.",
    )
    group_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Consumer group; default 'temporal-triggers-<trigger id>'. Offsets are "
        "committed for this group only after the events were accepted.",
    )
    start: Literal["earliest", "latest"] = Field(
        default="latest",
        description="Where a group without committed offsets starts: 'earliest' (every "
        "retained message) or 'latest' (only new ones). A group with commits resumes there.",
    )
    value_format: Literal["json", "text", "bytes"] = Field(
        default="json",
        description="How a message's value becomes the event's data: parsed JSON, UTF-8 text, "
        "or the raw bytes as base64. A value that is not valid JSON (or not UTF-8 for "
        "'text') is dead-lettered.",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="SASL mechanism; the password is the 'sasl_password' secret.",
    )
    sasl_username: str | None = Field(default=None, min_length=1, max_length=256)
    tls: bool = Field(default=False, description="Connect over TLS (SSL / SASL_SSL).")
    tls_ca: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CA_CHARS,
        description="PEM certificate(s) of the CA that signed the brokers' certificates; "
        "default: the system's trusted CAs.",
    )
    tls_verify: bool = Field(
        default=True,
        description="Verify the brokers' certificates and host names (turn off only for tests).",
    )
    max_poll_records: int = Field(
        default=500, ge=1, le=10_000, description="At most this many messages per fetch."
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="A message delivered this many times without being accepted is "
        "dead-lettered (counted by this worker process: Kafka does not count deliveries).",
    )
    session_timeout: int = Field(
        default=10,
        ge=6,
        le=300,
        description="Seconds without a heartbeat after which the group gives this consumer's "
        "partitions to another one (Kafka's session.timeout.ms, in seconds).",
    )
    static_membership: bool = Field(
        default=True,
        description="Join the group with a fixed instance id (derived from the trigger id), "
        "so a reconnect within session_timeout gets its partitions back without a "
        "rebalance. Two triggers never share an instance id.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        for server in value:
            split_host_port(server)
        return value

    @field_validator("topics")
    @classmethod
    def _check_topics(cls, value: list[str] | None) -> list[str] | None:
        for topic in value or ():
            if _TOPIC.fullmatch(topic) is None or topic in (".", ".."):
                raise ValueError(
                    f"{topic[:300]!r} is not a Kafka topic name "
                    "(1-249 letters, digits, '.', '_' or '-')"
                )
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"topic_pattern is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> KafkaConfig:
        if (self.topics is None) == (self.topic_pattern is None):
            raise ValueError("give exactly one of topics and topic_pattern")
        if (self.sasl_mechanism is None) != (self.sasl_username is None):
            raise ValueError("sasl_mechanism and sasl_username go together")
        if self.tls_ca is not None and not self.tls:
            raise ValueError("tls_ca needs tls: true")
        if not self.tls_verify and not self.tls:
            raise ValueError("tls_verify applies only with tls: true")
        return self

    def hosts(self) -> list[tuple[str, int]]:
        return [split_host_port(server) for server in self.bootstrap_servers]
