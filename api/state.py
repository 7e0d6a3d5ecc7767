"""Process-wide objects the routes share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api import control
from api.batcher import SignalBatcher
from api.ratelimit import RateLimiter, RecentKeys
from api.services.capture import Captures
from triggers.contracts.names import EVENTS_SIGNAL
from triggers.contracts.trigger import EventBatch
from triggers.core.events import Event
from triggers.infra.crypto import SecretBox
from triggers.infra.metrics import Metrics
from triggers.infra.models import Trigger
from triggers.infra.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    client: Client
    secret_box: SecretBox
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    recent: RecentKeys = field(default_factory=RecentKeys)
    captures: Captures = field(default_factory=Captures)
    batcher: SignalBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = SignalBatcher(self._signal_events)

    async def _signal_events(self, trigger: Trigger, events: list[Event]) -> None:
        await control.start_or_signal(
            self.client,
            trigger,
            task_queue=self.settings.task_queue,
            signal=EVENTS_SIGNAL,
            arg=EventBatch(events),
        )
