"""All configuration, read once from the environment (prefix ``TRIGGERS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_HOME = Path(".triggers")


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``TRIGGERS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TRIGGERS_", extra="ignore")

    home: Path = Field(default=DEV_HOME, description="Folder for embedded state (dev only).")
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; empty means SQLite at <home>/triggers.db.",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    task_queue: str = "triggers"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str = Field(default="", description="Base URL shown in webhook URLs.")

    # Fernet keys, comma separated, newest first. The first encrypts; all decrypt (rotation).
    secret_keys: SecretStr = SecretStr("")
    dev_mode: bool = False

    webhook_max_body_bytes: int = 256 * 1024
    # A delivery's body must arrive within this many seconds (else 408): a sender that
    # trickles bytes, or declares more than it sends, cannot hold a request open.
    webhook_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    webhook_rate_limit_per_second: float = 100.0
    webhook_rate_limit_burst: int = 200
    webhook_timestamp_tolerance_seconds: int = 300
    retry_after_seconds: int = 5

    # Large event data (claim check) is kept this long after it was first stored; workers
    # delete older rows hourly. Longer than any run may take to start and read its event.
    payload_retention_days: int = Field(default=7, ge=1)

    worker_max_concurrent_workflow_tasks: int = 100
    worker_workflow_task_pollers: int = 10
    worker_activity_task_pollers: int = 5
    worker_max_concurrent_activities: int = 2000

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'triggers.db').as_posix()}"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
