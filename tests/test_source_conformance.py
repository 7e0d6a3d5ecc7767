"""The pull providers run the conformance cases that apply to them (tests/conformance.py):
cron, http_poll (a local HTTP server) and sql_poll (a table of the local PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.conformance import SourceConformance
from tests.conftest import PG_DSN, need_service
from tests.local_http import LocalServer
from triggers.providers.cron import CronProvider
from triggers.providers.http_poll import HttpPollProvider
from triggers.providers.sql_poll import SqlPollProvider


class TestCronConformance(SourceConformance):
    provider = CronProvider

    async def config(self, **overrides: Any) -> dict[str, Any]:
        # ``restart``: another spelling of UTC, so the config changes and nothing else.
        zone = "Etc/UTC" if overrides.get("restart") else "UTC"
        return {"cron": "* * * * * *", "timezone": zone}

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        pytest.skip("cron takes no secrets")

    async def produce(self, n: int) -> None:
        """A schedule firing every second produces by itself."""


class TestHttpPollConformance(SourceConformance):
    """A local JSON API listing items; ``/denied`` refuses every token with 401 (and
    echoes the request's headers in its body, as careless servers do)."""

    provider = HttpPollProvider
    network_allowlist = ("127.0.0.1",)

    async def setup_source(self) -> None:
        self.items: list[dict[str, Any]] = []

        def handle(request: Request) -> Response:
            if request.url.path == "/denied":
                return JSONResponse({"refused": dict(request.headers)}, status_code=401)
            return JSONResponse({"data": self.items})

        self.server = LocalServer(handler=handle)
        await self.server.start()

    async def teardown_source(self) -> None:
        await self.server.stop()

    async def config(self, **overrides: Any) -> dict[str, Any]:
        # ``restart``: another max_pages (one page is all there is).
        return {
            "url": f"{self.server.url}/items",
            "items": "$.data[*]",
            "id_field": "id",
            "interval": "1s",
            "start_from": "beginning",
            "max_pages": 20 + int(overrides.get("restart", 0)),
        }

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        config = await self.config()
        config |= {"url": f"{self.server.url}/denied", "headers": {"X-Token": "{{secrets.TOKEN}}"}}
        return config, {"TOKEN": secret}

    async def produce(self, n: int) -> None:
        self.items += [{"id": uuid.uuid4().hex, "n": len(self.items) + i} for i in range(n)]


class TestSqlPollConformance(SourceConformance):
    """A table of the local PostgreSQL, its rows ordered by an integer column."""

    provider = SqlPollProvider
    network_allowlist = ("127.0.0.1",)

    async def setup_source(self) -> None:
        try:
            self.conn = await asyncpg.connect(PG_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            need_service("PostgreSQL at 127.0.0.1:5432", str(exc))
        self.table = f"conf_{uuid.uuid4().hex[:12]}"
        await self.conn.execute(f"CREATE TABLE {self.table} (id text PRIMARY KEY, at int)")
        self.rows = 0

    async def teardown_source(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        await self.conn.close()

    def _query(self, table: str) -> str:
        return f"SELECT id, at FROM {table} WHERE at >= :cursor ORDER BY at, id"

    async def config(self, **overrides: Any) -> dict[str, Any]:
        # ``restart``: another batch_size (every poll here returns one page).
        return {
            "url": PG_DSN.replace("postgresql://", "postgresql+asyncpg://"),
            "query": self._query(self.table),
            "cursor_column": "at",
            "id_column": "id",
            "initial_cursor": 0,
            "start_from": "beginning",
            "interval": "1s",
            "batch_size": 100 + int(overrides.get("restart", 0)),
        }

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        # A table that does not exist: SQLSTATE 42P01, which no retry mends.
        config = await self.config() | {"query": self._query(f"{self.table}_missing")}
        return config, {"password": secret}

    async def produce(self, n: int) -> None:
        await self.conn.executemany(
            f"INSERT INTO {self.table} (id, at) VALUES ($1, $2)",
            [(uuid.uuid4().hex, self.rows + i) for i in range(n)],
        )
        self.rows += n
