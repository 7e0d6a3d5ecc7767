"""Process-wide objects the routes share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.ratelimit import RateLimiter, RecentKeys
from triggers.crypto import SecretBox
from triggers.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    client: Client
    secret_box: SecretBox
    limiter: RateLimiter = field(default_factory=RateLimiter)
    recent: RecentKeys = field(default_factory=RecentKeys)
