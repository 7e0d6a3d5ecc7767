"""The builder page in a real browser (Playwright driving Debian's chromium) against the
real stack: the API served by uvicorn on 127.0.0.1, a worker, and a Temporal dev server
with its Web UI, so a run's link can be followed. Each test saves a screenshot under
``artifacts/screenshots/``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, expect
from temporalio.client import Client

import tests.stream_providers  # noqa: F401  (registers test_json_stream)
from tests.browser import WAIT_MS, browser, new_page, shot, sign_in
from tests.conftest import Stack, stack_with_worker
from tests.helpers import SECRET, count_runs, github_body, github_trigger, post_github, status_of
from tests.live_server import serve
from triggers.core.events import run_workflow_id
from triggers.infra import dead_letters
from triggers.infra.db import upgrade
from workers.devserver import DevServer

__all__ = ["browser"]  # the fixture, used by name

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
async def ui_temporal() -> AsyncIterator[DevServer]:
    """A dev server with its Web UI (the session's is headless): run links are followed."""
    server = DevServer(headless=False)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def ui(
    ui_temporal: DevServer, secret_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, str]]:
    db = tmp_path_factory.mktemp("ui") / "triggers.db"
    url = f"sqlite+aiosqlite:///{db}"
    await asyncio.to_thread(upgrade, url)
    client = await Client.connect(ui_temporal.address)
    assert ui_temporal.ui_url
    async with stack_with_worker(url, client, secret_keys, temporal_ui_url=ui_temporal.ui_url) as s:
        assert s.app is not None
        async with serve(s.app) as base:
            s.settings.public_url = base  # webhook URLs as a sender reaches this server
            yield s, base


async def test_sign_in_create_github_webhook_and_watch_its_run_start(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    page = await new_page(browser)
    answer = await page.goto(f"{base}/")
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))
    assert answer is not None and "script-src 'self'" in answer.headers["content-security-policy"]
    await page.get_by_label("API key").fill("tt_not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("This API key is not valid.")

    await sign_in(page, base, s.alice)
    key = s.alice["Authorization"].removeprefix("Bearer ")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "tt_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert key not in cookie["value"]

    await page.goto(f"{base}/ui/new")
    await page.get_by_role("link", name="webhook").click()
    await page.locator("#f-name").fill("app pushes")
    await page.get_by_label("Preset").select_option("github")
    await page.get_by_label("signing_secret (required)").fill(SECRET)
    await page.get_by_role("button", name="Create trigger").click()
    await expect(page.get_by_role("heading", name="app pushes")).to_be_visible()
    tid = page.url.rsplit("/", 1)[1]
    await expect(page.locator("#webhook-url")).to_have_value(f"{base}/webhooks/github/{tid}")
    await expect(page.locator("[data-live-state]")).to_have_text(re.compile("^Live"))
    assert SECRET not in await page.content()

    async with httpx.AsyncClient(base_url=base) as http:
        r = await post_github(http, tid, delivery="ui-delivery-1")
    assert r.status_code == 202, r.text
    started = page.locator('[data-log] tr[data-outcome="started"]')
    await expect(started).to_have_count(1)
    await expect(page.locator('[data-field="runs_started"] dd')).to_have_text("1")
    href = await started.get_by_role("link").get_attribute("href")
    run_id = run_workflow_id(tid, "ui-delivery-1")
    desc = await s.client.get_workflow_handle(run_id).describe()
    ui_url = s.settings.temporal_ui_url
    assert (
        href
        == f"{ui_url}/namespaces/default/workflows/{quote(run_id, safe='')}/{desc.run_id}/history"
    )
    await shot(page, "webhook-live-log")

    # The link works: the Temporal Web UI shows that run.
    temporal_page = await page.context.new_page()
    await temporal_page.goto(href)
    await expect(temporal_page.get_by_text(run_id).first).to_be_visible(timeout=WAIT_MS * 2)
    await shot(temporal_page, "webhook-run-in-temporal-ui")
    await page.context.close()


async def test_cron_and_http_poll_through_their_generated_forms(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    page = await new_page(browser)
    await sign_in(page, base, s.alice)

    await page.goto(f"{base}/ui/new/cron")
    await page.locator("#f-name").fill("weekday standup")
    await page.get_by_label("Cron").fill("every morning")
    await page.get_by_role("button", name="Create trigger").click()
    # The API's own message for the same field, next to that field.
    api = await s.http.post(
        "/api/triggers",
        json={"name": "x", "provider": "cron", "config": {"cron": "every morning"}},
        headers=s.alice,
    )
    assert api.status_code == 422
    (msg,) = [e["msg"] for e in api.json()["detail"] if e["loc"] == ["body", "config", "cron"]]
    await expect(page.locator('[data-for="config.cron"]')).to_have_text(msg)
    await expect(page.get_by_label("Cron")).to_have_attribute("aria-invalid", "true")
    await shot(page, "cron-form-error")
    await page.get_by_label("Cron").fill("0 9 * * 1-5")
    await page.get_by_label("Timezone").select_option("Europe/Berlin")
    await page.get_by_role("button", name="Create trigger").click()
    await expect(page.get_by_role("heading", name="weekday standup")).to_be_visible()
    await expect(page.locator('[data-field="next_at"] dd')).not_to_have_text("—")
    await shot(page, "cron-trigger-page")
    cron_id = page.url.rsplit("/", 1)[1]
    got = (await s.http.get(f"/api/triggers/{cron_id}", headers=s.alice)).json()
    assert got["config"]["cron"] == "0 9 * * 1-5" and got["config"]["timezone"] == "Europe/Berlin"

    await page.goto(f"{base}/ui/new/http_poll")
    await page.locator("#f-name").fill("new orders")
    await page.locator("#f-enabled").uncheck()  # created disabled: it polls nothing here
    await page.get_by_label("Url").fill("https://example.com/orders")
    await page.get_by_label("Headers").fill('{"Authorization": "Bearer {{secrets.token}}"}')
    await page.get_by_label("Secret name 1").fill("token")
    await page.get_by_label("Secret value 1").fill("tok-never-shown-42")
    await page.get_by_role("button", name="Create trigger").click()
    await expect(page.get_by_role("heading", name="new orders")).to_be_visible()
    await expect(page.locator("[data-state]")).to_have_text("disabled")
    assert "tok-never-shown-42" not in await page.content()
    poll_id = page.url.rsplit("/", 1)[1]
    got = (await s.http.get(f"/api/triggers/{poll_id}", headers=s.alice)).json()
    assert got["config"]["url"] == "https://example.com/orders"
    assert got["secret_names"] == ["token"] and not got["enabled"]
    await page.goto(f"{base}/ui/triggers?provider=http_poll")
    await expect(page.get_by_role("link", name="new orders")).to_be_visible()
    await expect(page.get_by_role("link", name="weekday standup")).to_have_count(0)
    await shot(page, "trigger-list-filtered")
    await page.context.close()


async def test_capture_a_test_event_then_dry_run_it(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    body = {**github_trigger("captured"), "condition": 'event.data.ref == "refs/heads/main"'}
    tid = (await s.create_trigger(body))["id"]
    page = await new_page(browser)
    await sign_in(page, base, s.alice)
    await page.goto(f"{base}/ui/triggers/{tid}")
    await page.get_by_role("button", name="Listen for a test event").click()
    await expect(page.locator("[data-capture-state]")).to_have_text(re.compile("^Listening"))
    async with httpx.AsyncClient(base_url=base) as http:
        r = await post_github(http, tid, delivery="ui-capture-1", body=github_body())
    assert r.status_code == 202 and r.json()["captured"] is True, r.text
    await expect(page.locator("[data-captured]")).to_contain_text("ui-capture-1")
    await page.get_by_role("button", name="Try these events").click()
    result = page.locator("[data-dry-result] .dry.yes")
    await expect(result).to_contain_text("ui-capture-1: would start")
    await expect(result).to_contain_text("condition passed")
    await shot(page, "capture-and-dry-run")
    # Captured, not accepted: nothing counted, no run.
    assert (await status_of(s, tid))["events_received"] == 0
    assert await count_runs(s.client, tid) == 0
    # A form post without the session's CSRF token changes nothing.
    refused = await page.request.post(f"{base}/ui/triggers/{tid}/disable", form={"csrf": "x"})
    assert refused.status == 403
    assert (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()["enabled"]
    await page.context.close()


async def test_another_user_cannot_see_the_trigger_page(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    tid = (await s.create_trigger(github_trigger("alice only")))["id"]
    page = await new_page(browser, width=390, height=844)  # a phone
    await sign_in(page, base, s.bob)
    answer = await page.goto(f"{base}/ui/triggers/{tid}")
    assert answer is not None and answer.status == 404
    await expect(page.get_by_role("alert")).to_have_text("trigger not found")
    live = await page.request.get(f"{base}/ui/triggers/{tid}/live")
    assert live.status == 404
    await page.goto(f"{base}/ui/triggers")
    await expect(page.get_by_role("link", name="alice only")).to_have_count(0)
    await shot(page, "second-user-phone-width")
    await page.context.close()


GRAPH = {
    "nodes": [
        {"id": "is_main", "type": "if", "condition": 'event.data.ref == "refs/heads/main"'},
        {"id": "note", "type": "log", "message": "'main'"},
        {"id": "other", "type": "log", "message": "'elsewhere'"},
    ],
    "edges": [
        {"source": "is_main", "target": "note", "branch": "true"},
        {"source": "is_main", "target": "other", "branch": "false"},
    ],
}


@pytest.mark.timeout(30)
async def test_graph_target_as_json_is_drawn_and_an_invalid_one_names_the_node(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    page = await new_page(browser)
    await sign_in(page, base, s.alice)
    await page.goto(f"{base}/ui/new/webhook")
    await page.locator("#f-name").fill("graph drawn")
    await page.get_by_label("Preset").select_option("github")
    await page.get_by_label("signing_secret (required)").fill(SECRET)
    await page.get_by_label("Each event that passes starts").select_option("graph")
    await page.get_by_label("Graph (JSON: nodes and edges)").fill(json.dumps(GRAPH))
    diagram = page.get_by_role("img", name="Graph diagram")
    await expect(diagram.locator("g.node")).to_have_count(3)
    await expect(diagram.locator("line.edge")).to_have_count(2)
    for node_id in ("is_main", "note", "other"):
        await expect(diagram.locator("g.node text", has_text=node_id)).to_have_count(1)
    await expect(diagram.locator("text.branch")).to_have_text(["true", "false"])
    await shot(page, "graph-diagram")

    # A node with a bad expression: the API's message, naming the node, next to the graph.
    bad = json.loads(json.dumps(GRAPH))
    bad["nodes"][1]["message"] = "'main' +"
    await page.get_by_label("Graph (JSON: nodes and edges)").fill(json.dumps(bad))
    await page.get_by_role("button", name="Create trigger").click()
    api = await s.http.post(
        "/api/triggers",
        json={**github_trigger("x"), "target": {"kind": "graph", "graph": bad}},
        headers=s.alice,
    )
    assert api.status_code == 422, api.text
    (msg,) = [e["msg"] for e in api.json()["detail"]]
    assert "note" in msg
    await expect(page.locator('[data-for="target.graph"]')).to_have_text(msg)
    await expect(page.get_by_label("Graph (JSON: nodes and edges)")).to_have_attribute(
        "aria-invalid", "true"
    )
    # The form kept the graph, so it is still drawn.
    await expect(diagram.locator("g.node")).to_have_count(3)
    assert SECRET not in await page.content()
    await shot(page, "graph-error-names-node")
    await page.context.close()


@pytest.mark.timeout(30)
async def test_edit_form_changes_the_poll_interval_and_shows_the_api_message(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    body = {
        "name": "orders to edit",
        "provider": "http_poll",
        "enabled": False,  # it polls nothing here
        "config": {
            "url": "https://example.com/orders",
            "headers": {"Authorization": "Bearer {{secrets.token}}"},
        },
        "secrets": {"token": "tok-edit-ui-never-shown"},
    }
    tid = (await s.create_trigger(body))["id"]
    page = await new_page(browser)
    await sign_in(page, base, s.alice)
    await page.goto(f"{base}/ui/triggers/{tid}")
    await page.get_by_role("link", name="Edit").click()
    interval = page.get_by_label("Interval")
    await expect(interval).to_have_value("60s")
    await expect(page.get_by_label("Url")).to_have_value("https://example.com/orders")
    assert "tok-edit-ui-never-shown" not in await page.content()
    await interval.fill("0s")
    await page.get_by_role("button", name="Save changes").click()
    whole = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()["config"]
    api = await s.http.patch(
        f"/api/triggers/{tid}", json={"config": {**whole, "interval": "0s"}}, headers=s.alice
    )
    assert api.status_code == 422
    (msg,) = [e["msg"] for e in api.json()["detail"] if e["loc"][-1] == "interval"]
    await expect(page.locator('[data-for="config.interval"]')).to_have_text(msg)
    await expect(interval).to_have_attribute("aria-invalid", "true")
    await shot(page, "edit-form-error")

    await interval.fill("2m")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("heading", name="orders to edit")).to_be_visible()
    got = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert got["config"] == {**whole, "interval": "2m"}
    assert got["secret_names"] == ["token"]  # the empty secret field kept it
    await expect(page.locator("#definition pre").first).to_contain_text('"interval": "2m"')
    await page.context.close()


@pytest.mark.timeout(30)
async def test_dead_letter_in_the_live_log_and_redriven_from_the_page(
    ui: tuple[Stack, str], browser: Browser
) -> None:
    s, base = ui
    assert s.app is not None
    body = {"name": "json stream", "provider": "test_json_stream", "config": {}}
    tid = (await s.create_trigger(body))["id"]
    await dead_letters.record(
        s.app.state.triggers.sessions,
        trigger_id=tid,
        key="orders/41",
        reason="over the size limit",
        headers={},
        raw=b'{"order": 41}',
        attempts=2,
    )
    page = await new_page(browser, width=390, height=844)  # a phone
    await sign_in(page, base, s.alice)
    await page.goto(f"{base}/ui/triggers/{tid}")
    logged = page.locator('[data-log] tr[data-outcome="dead-lettered"]')
    await expect(logged).to_contain_text("over the size limit (position orders/41, 2 attempt(s))")
    await expect(page.locator('[data-field="stream"]')).to_be_visible()
    await expect(page.locator('[data-field="stream.dead_letters"] dd')).to_have_count(1)
    row = page.locator("[data-dead-letter]")
    await expect(row).to_contain_text("orders/41")
    await expect(row).to_contain_text("over the size limit")
    await page.get_by_role("button", name="Redrive orders/41").click()

    run_id = run_workflow_id(tid, "orders/41")
    link = page.locator("[data-dead-letter] [data-redriven] a")
    await expect(link).to_have_text(run_id)
    desc = await s.client.get_workflow_handle(run_id).describe()
    ui_url = s.settings.temporal_ui_url
    expected = (
        f"{ui_url}/namespaces/default/workflows/{quote(run_id, safe='')}/{desc.run_id}/history"
    )
    assert await link.get_attribute("href") == expected
    await expect(logged.get_by_role("link")).to_have_attribute("href", expected)
    await expect(page.locator('[data-log] tr[data-outcome="started"]')).to_have_count(1)
    await shot(page, "dead-letter-redriven-phone")
    await page.context.close()


def test_screenshots_folder_is_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parent.parent / ".gitignore").read_text().split()
    assert "artifacts/" in ignored
