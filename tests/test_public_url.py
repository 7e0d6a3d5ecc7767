"""Webhook URLs as senders must use them: ``TRIGGERS_PUBLIC_URL``, and never ``0.0.0.0``
for an API on a wildcard address (a container); what the README promises about config
changes and plugins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import stack_with_worker
from tests.helpers import github_trigger
from triggers.infra.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize(
    ("settings", "base"),
    [
        ({"api_host": "0.0.0.0", "api_port": 8000}, "http://localhost:8000"),
        ({"api_host": "::", "api_port": 9000}, "http://localhost:9000"),
        ({"api_host": "::1", "api_port": 8000}, "http://[::1]:8000"),
        ({"api_host": "127.0.0.1", "api_port": 8000}, "http://127.0.0.1:8000"),
        (
            {"api_host": "0.0.0.0", "public_url": "https://hooks.example.com/"},
            "https://hooks.example.com",
        ),
    ],
)
def test_base_url(settings: dict[str, object], base: str) -> None:
    assert Settings(**settings).base_url == base  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "base"),
    [
        ({"api_host": "0.0.0.0"}, "http://localhost:8000"),
        (
            {"api_host": "0.0.0.0", "public_url": "https://hooks.example.com"},
            "https://hooks.example.com",
        ),
    ],
)
async def test_webhook_url_a_sender_can_use(
    overrides: dict[str, str], base: str, sqlite_url: str, client: Client, secret_keys: str
) -> None:
    async with stack_with_worker(sqlite_url, client, secret_keys, **overrides) as s:
        trigger = await s.create_trigger(github_trigger())
        assert trigger["webhook_url"] == f"{base}/webhooks/github/{trigger['id']}"
        again = (await s.http.get(f"/api/triggers/{trigger['id']}", headers=s.alice)).json()
        assert again["webhook_url"] == trigger["webhook_url"]


async def test_patch_config_replaces_the_whole_config_as_documented(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    assert "**`config` replaces the whole config**" in README
    async with stack_with_worker(sqlite_url, client, secret_keys) as s:
        trigger = await s.create_trigger(github_trigger(max_body_bytes=1000))
        assert trigger["config"]["max_body_bytes"] == 1000
        r = await s.http.patch(
            f"/api/triggers/{trigger['id']}", json={"config": {"preset": "github"}}, headers=s.alice
        )
        assert r.status_code == 200, r.text
        assert r.json()["config"]["max_body_bytes"] != 1000  # back to its default


def test_readme_says_plugins_need_a_restart_and_the_container_needs_a_public_url() -> None:
    text = re.sub(r"\s+", " ", README)
    assert "restart the API and every worker" in text.replace("**", "")
    assert "Set **`TRIGGERS_PUBLIC_URL`**" in text
