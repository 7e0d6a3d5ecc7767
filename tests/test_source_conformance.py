"""The pull providers run the conformance cases that apply to them (tests/conformance.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance import SourceConformance
from triggers.providers.cron import CronProvider


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
