"""All configuration, read once from the environment (prefix ``TRIGGERS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_HOME = Path(".triggers")


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``TRIGGERS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TRIGGERS_", extra="ignore")

    home: Path = Field(
        default=DEV_HOME,
        description="Folder for embedded state: the SQLite database when database_url is "
        "empty; for `dev` also Temporal's file, the secret key and the local API key.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL (postgresql+asyncpg://..., sqlite+aiosqlite:///...); "
        "empty means SQLite at <home>/triggers.db.",
    )
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        description="host:port of the Temporal frontend (for `dev`: where its server listens).",
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    temporal_tls: bool = Field(default=False, description="Connect to Temporal over TLS.")
    task_queue: str = Field(
        default="triggers", description="Task queue of the trigger workflows and built-in runs."
    )

    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8000, description="Port the API listens on.")
    public_url: str = Field(
        default="",
        description="Base URL senders reach the API at, shown in webhook URLs (e.g. "
        "https://hooks.example.com); empty: http://<api_host>:<api_port>.",
    )

    temporal_ui_url: str = Field(
        default="",
        description="Base URL of the Temporal Web UI (e.g. http://127.0.0.1:8233): the "
        "builder page links each run there; empty: no links (`dev` sets its own).",
    )

    # The first encrypts; all decrypt (rotation).
    secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet keys that encrypt trigger secrets, comma separated, newest first; "
        "required (`dev` makes one in <home>).",
    )

    webhook_max_body_bytes: int = Field(
        default=256 * 1024, description="Largest webhook body accepted, in bytes."
    )
    # A delivery's body must arrive within this many seconds (else 408): a sender that
    # trickles bytes, or declares more than it sends, cannot hold a request open.
    webhook_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a webhook body may take to arrive (else 408).",
    )
    webhook_rate_limit_per_second: float = Field(
        default=100.0, description="Webhook deliveries per second per trigger and API process."
    )
    webhook_rate_limit_burst: int = Field(
        default=200, description="Webhook deliveries a trigger may send at once above the rate."
    )
    retry_after_seconds: int = Field(
        default=5, description="Retry-After of a 503 answered while Temporal cannot be asked."
    )

    # Longer than any run may take to start and read its event.
    payload_retention_days: int = Field(
        default=7,
        ge=1,
        description="Days large event data (claim check) is kept; workers delete older rows "
        "hourly.",
    )

    worker_max_concurrent_workflow_tasks: int = Field(
        default=100, description="Workflow tasks a worker runs at once."
    )
    worker_workflow_task_pollers: int = Field(
        default=10, description="Workflow task pollers of a worker."
    )
    worker_activity_task_pollers: int = Field(
        default=5, description="Activity task pollers of a worker."
    )
    worker_max_concurrent_activities: int = Field(
        default=2000,
        description="Activities a worker runs at once (every running source loop holds one).",
    )
    # Then they are cancelled and Temporal retries them on another worker.
    # The SDK sends a running activity's heartbeats at most this often (and at most every
    # 0.8 x its heartbeat timeout, 8 s for sources); a cancel (a disable or config change
    # reaching a running source) arrives with a heartbeat's answer.
    worker_heartbeat_throttle_seconds: float = Field(
        default=8.0,
        ge=0.5,
        le=60,
        description="Most seconds between a running source's heartbeats to Temporal: a "
        "disable or config change reaches a running source within about this (lower: "
        "sooner, and more calls to Temporal per running source).",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="At a stop (SIGINT, SIGTERM), seconds running activities other than "
        "source loops get to finish.",
    )

    # Off by default: several workers on one host, or a worker in a test, would fight for
    # one fixed port. The compose file sets it.
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus endpoint (GET /metrics); 0: none.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the worker's metrics port listens on (0.0.0.0 in containers).",
    )
    metrics_per_trigger: bool = Field(
        default=False,
        description="Add a trigger_id label to the event, run and latency metrics (one "
        "series per trigger: cardinality; /metrics then shows trigger ids).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log records as plain text lines or as JSON lines (one object a line, "
        "with trigger, event, run and trace ids as fields); the container image sets json.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'triggers.db').as_posix()}"

    @property
    def base_url(self) -> str:
        """The API's URL as senders use it: ``public_url``, else what the API listens on,
        with ``localhost`` for a wildcard address (``0.0.0.0`` is no address to send to)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.api_host
        if self.listens_everywhere:
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    @property
    def listens_everywhere(self) -> bool:
        """The API binds a wildcard address (in a container, typically)."""
        return self.api_host in ("", "0.0.0.0", "::")


@lru_cache
def get_settings() -> Settings:
    return Settings()
