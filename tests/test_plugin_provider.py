"""A provider installed as a separate package is found through its entry point and used
through the API like a built-in one."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, eventually
from tests.helpers import runs_of
from tests.test_source_runtime import src_stack  # noqa: F401  (fixture)
from triggers import providers

PLUGIN = Path(__file__).parent / "plugin_echo"


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def echo_installed() -> Iterator[None]:
    _pip("install", "--no-deps", "--no-build-isolation", str(PLUGIN))
    importlib.invalidate_caches()
    providers.reload()
    yield
    _pip("uninstall", "-y", "triggers-echo-provider")
    importlib.invalidate_caches()


@pytest.fixture
async def plugin_stack(echo_installed: None, src_stack: Stack) -> AsyncIterator[Stack]:  # noqa: F811
    yield src_stack


async def test_entry_point_provider_through_the_api(plugin_stack: Stack) -> None:
    s = plugin_stack
    assert "echo" in providers.provider_names()
    # Published like a built-in: a create member whose config is the plugin's own model.
    schemas = (await s.http.get("/openapi.json")).json()["components"]["schemas"]
    mapping = schemas["TriggerCreate"]["discriminator"]["mapping"]
    member = schemas[mapping["echo"].rsplit("/", 1)[1]]
    assert member["properties"]["config"]["$ref"] == "#/components/schemas/EchoConfig"
    assert schemas["EchoConfig"]["properties"]["messages"]["type"] == "array"
    bad = await s.http.post(
        "/api/triggers",
        json={"name": "e", "provider": "echo", "config": {"messages": "not a list"}},
        headers=s.alice,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "config", "messages"]
    tid = (
        await s.create_trigger(
            {"name": "e", "provider": "echo", "config": {"messages": ["hi", "there"]}}
        )
    )["id"]

    async def two() -> list[str]:
        ids = sorted(await runs_of(s.client, tid))
        return ids if len(ids) == 2 else []

    assert await eventually(two) == [f"run:{tid}:echo-0", f"run:{tid}:echo-1"]
    result = await s.client.get_workflow_handle(f"run:{tid}:echo-1").result()
    assert result["event_type"] == "echo.message"
