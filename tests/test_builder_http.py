"""The builder's server side without a browser: ``/api/providers`` (what its forms are
generated from), the session and CSRF rules, bounded form posts, and the test-event
capture taking a delivery instead of accepting it."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from typing import Any

import tests.stream_providers  # noqa: F401  (registers test_json_stream)
from api.ui import status_view
from api.ui.web import templates
from tests.browser import http_sign_in
from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_trigger, post_github
from triggers.contracts.trigger import StreamStatus, TriggerStatus
from triggers.core.events import run_workflow_id
from triggers.infra import dead_letters
from triggers.providers import provider_names


async def test_providers_are_listed_with_their_config_schema(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    listed = await s.http.get("/api/providers", headers=s.alice)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()["items"]] == provider_names()
    one = (await s.http.get("/api/providers/webhook", headers=s.alice)).json()
    assert "github" in one["config_schema"]["properties"]["preset"]["enum"]
    assert one["secrets"]["required"] == ["signing_secret"]
    assert one["secrets_schema"]["required"] == ["signing_secret"]
    assert one["capabilities"] == {
        "receives_webhooks": True,
        "runs_source": False,
        "overlap_field": None,
    }
    assert (await s.http.get("/api/providers/nope", headers=s.alice)).status_code == 404
    assert (await s.http.get("/api/providers")).status_code == 401


async def test_session_csrf_and_bounds(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    assert (await s.http.get("/ui/triggers")).headers["location"] == "/ui/signin"
    r = await s.http.post("/ui/signin", data={"csrf": "forged", "api_key": "x"})
    assert r.status_code == 403 and "session" not in r.headers.get("set-cookie", "")
    csrf = await http_sign_in(s.http, s.alice)
    tid = (await s.create_trigger(github_trigger("csrf")))["id"]
    no_token = await s.http.post(f"/ui/triggers/{tid}/disable", data={})
    assert no_token.status_code == 403
    too_big = await s.http.post(
        f"/ui/triggers/{tid}/disable", data={"csrf": csrf, "pad": "x" * 300_000}
    )
    assert too_big.status_code == 413
    ok = await s.http.post(f"/ui/triggers/{tid}/disable", data={"csrf": csrf})
    assert ok.status_code == 303
    got = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert got["enabled"] is False
    out = await s.http.post("/ui/signout", data={"csrf": csrf})
    assert out.status_code == 303
    assert (await s.http.get("/ui/triggers")).status_code == 303


async def test_capture_takes_one_delivery_even_of_a_disabled_trigger(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = {**github_trigger("capture"), "enabled": False}
    tid = (await s.create_trigger(body))["id"]
    csrf = await http_sign_in(s.http, s.alice)
    assert (await post_github(s.http, tid, delivery="cap-0")).status_code == 409
    listen = await s.http.post(
        f"/ui/triggers/{tid}/capture", json={}, headers={"x-csrf-token": csrf}
    )
    assert listen.status_code == 200, listen.text
    caught = await post_github(s.http, tid, delivery="cap-1")
    assert caught.status_code == 202 and caught.json()["captured"] is True
    shown = (await s.http.get(f"/ui/triggers/{tid}/capture")).json()
    assert shown["listening"] is False and shown["event"]["id"] == "cap-1"
    # Only the next one: the trigger is disabled again for the rest.
    assert (await post_github(s.http, tid, delivery="cap-2")).status_code == 409
    assert await count_runs(s.client, tid) == 0
    # A viewer may not listen (it would divert a real delivery).
    s.http.cookies.clear()
    await s.http.put(
        f"/api/triggers/{tid}/shares", json={"user": "bob", "role": "viewer"}, headers=s.alice
    )
    bob_csrf = await http_sign_in(s.http, s.bob)
    refused = await s.http.post(
        f"/ui/triggers/{tid}/capture", json={}, headers={"x-csrf-token": bob_csrf}
    )
    assert refused.status_code == 403


async def test_graph_target_errors_name_the_node_next_to_the_graph(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    csrf = await http_sign_in(s.http, s.alice)
    graph = '{"nodes": [{"id": "keep", "type": "filter", "condition": "true"}],'
    form = {
        "csrf": csrf,
        "name": "graph",
        "config.preset": "github",
        "secret.signing_secret": "s3cret-value-graph",
        "target.kind": "graph",
        "enabled": "on",
    }
    bad = await s.http.post(
        "/ui/new/webhook",
        data={**form, "target.graph": graph + '"edges": [{"source": "keep", "target": "gone"}]}'},
    )
    assert bad.status_code == 422
    assert 'data-for="target.graph"' in bad.text and "gone" in bad.text
    assert "s3cret-value-graph" not in bad.text  # a secret is never rendered back
    good = await s.http.post(
        "/ui/new/webhook", data={**form, "target.graph": graph + '"edges": []}'}
    )
    assert good.status_code == 303, good.text
    page = await s.http.get(good.headers["location"])
    assert page.status_code == 200 and "data-graph-diagram" in page.text
    # Another user's dry run through the page: 404, as in the API.
    tid = good.headers["location"].rsplit("/", 1)[1]
    s.http.cookies.clear()
    bob = await http_sign_in(s.http, s.bob)
    dry = await s.http.post(
        f"/ui/triggers/{tid}/dry-run", json={"last": 1}, headers={"x-csrf-token": bob}
    )
    assert dry.status_code == 404


def _csrf_of(text: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', text)
    assert found is not None
    return found.group(1)


def _poll_trigger(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "http_poll",
        "enabled": False,  # it polls nothing here
        "config": {
            "url": "https://example.com/orders",
            "headers": {"Authorization": "Bearer {{secrets.token}}"},
            "interval": "60s",
        },
        "secrets": {"token": "tok-edit-never-shown"},
    }


async def test_edit_form_saves_the_whole_config_and_keeps_or_removes_secrets(
    sqlite_stack: Stack,
) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(_poll_trigger("orders")))["id"]
    await http_sign_in(s.http, s.alice)
    shown = await s.http.get(f"/ui/triggers/{tid}/edit")
    assert shown.status_code == 200
    assert 'value="https://example.com/orders"' in shown.text and 'value="60s"' in shown.text
    assert "tok-edit-never-shown" not in shown.text
    # Every field as the page fills it, one changed: the whole config goes back.
    form = dict(re.findall(r'name="(config\.[a-z_]+)"[^>]*value="([^"]*)"', shown.text))
    headers = re.search(r'name="config.headers"[^>]*>([^<]*)</textarea>', shown.text)
    assert headers is not None
    form |= {"config.headers": html.unescape(headers.group(1)), "config.interval": "5m"}
    posted = {"csrf": _csrf_of(shown.text), "name": "orders v2", "target.kind": "run", **form}
    r = await s.http.post(f"/ui/triggers/{tid}/edit", data=posted)
    assert r.status_code == 303, r.text
    got = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert got["name"] == "orders v2" and got["config"]["interval"] == "5m"
    assert got["config"]["headers"] == {"Authorization": "Bearer {{secrets.token}}"}
    assert got["secret_names"] == ["token"]  # an empty secret field keeps it

    bad = await s.http.post(f"/ui/triggers/{tid}/edit", data={**posted, "config.interval": "0s"})
    assert bad.status_code == 422
    assert re.search(r'data-for="config.interval">[^<]*at least 1s', bad.text), bad.text

    # "Remove" clears a secret (and the headers that used it go with it).
    gone = {**posted, "remove.token": "yes", "config.headers": ""}
    assert (await s.http.post(f"/ui/triggers/{tid}/edit", data=gone)).status_code == 303
    assert (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()["secret_names"] == []


async def test_edit_form_non_owner_moving_a_destination_sees_the_403_at_the_field(
    sqlite_stack: Stack,
) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(_poll_trigger("shared orders")))["id"]
    await s.http.put(
        f"/api/triggers/{tid}/shares", json={"user": "bob", "role": "editor"}, headers=s.alice
    )
    csrf = await http_sign_in(s.http, s.bob)
    form = {
        "csrf": csrf,
        "name": "shared orders",
        "target.kind": "run",
        "config.url": "https://example.org/elsewhere",
        "config.headers": '{"Authorization": "Bearer {{secrets.token}}"}',
        "config.interval": "60s",
    }
    r = await s.http.post(f"/ui/triggers/{tid}/edit", data=form)
    assert r.status_code == 403
    assert re.search(r'data-for="config.url">config.url decides where', r.text), r.text
    assert "tok-edit-never-shown" not in r.text
    got = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert got["config"]["url"] == "https://example.com/orders"
    # Given again, the secret goes along: the change is saved.
    again = await s.http.post(
        f"/ui/triggers/{tid}/edit", data={**form, "secret.token": "tok-from-bob"}
    )
    assert again.status_code == 303, again.text
    # A viewer has no edit form.
    s.http.cookies.clear()
    await s.http.put(
        f"/api/triggers/{tid}/shares", json={"user": "carol", "role": "viewer"}, headers=s.alice
    )
    carol = await http_sign_in(s.http, s.carol)
    assert (await s.http.get(f"/ui/triggers/{tid}/edit")).status_code == 403
    r = await s.http.post(f"/ui/triggers/{tid}/edit", data={**form, "csrf": carol})
    assert r.status_code == 403


async def _dead_letter(s: Stack, tid: str, key: str, raw: bytes, reason: str) -> str:
    assert s.app is not None
    await dead_letters.record(
        s.app.state.triggers.sessions,
        trigger_id=tid,
        key=key,
        reason=reason,
        headers={},
        raw=raw,
        attempts=3,
    )
    async with s.app.state.triggers.sessions() as db:
        rows, _ = await dead_letters.list_page(db, trigger_id=uuid.UUID(tid), limit=50)
    (row,) = [r for r in rows if r.key == key]
    return str(row.id)


async def test_dead_letters_listed_and_redriven_from_the_page(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = {"name": "stream", "provider": "test_json_stream", "config": {"require": "id"}}
    tid = (await s.create_trigger(body))["id"]
    poison = await _dead_letter(s, tid, "orders/7", b'{"x": 1}', "no field 'id'")
    fixed = await _dead_letter(s, tid, "orders/8", b'{"id": 8}', "over the size limit")
    await s.http.put(
        f"/api/triggers/{tid}/shares", json={"user": "bob", "role": "viewer"}, headers=s.alice
    )
    bob = await http_sign_in(s.http, s.bob)
    shown = await s.http.get(f"/ui/triggers/{tid}")
    assert "orders/7" in shown.text and "no field &#39;id&#39;" in shown.text
    assert f"/dead-letters/{poison}/redrive" not in shown.text  # a viewer has no button
    refused = await s.http.post(
        f"/ui/triggers/{tid}/dead-letters/{poison}/redrive", data={"csrf": bob}
    )
    assert refused.status_code == 403

    s.http.cookies.clear()
    csrf = await http_sign_in(s.http, s.alice)
    url = f"/ui/triggers/{tid}/dead-letters/{{}}/redrive"
    assert (await s.http.post(url.format(fixed), data={})).status_code == 403  # no CSRF token
    still = await s.http.post(url.format(poison), data={"csrf": csrf})
    assert still.status_code == 422
    assert re.search(
        rf'data-for="dl.{poison}">still cannot become an event: no field &#39;id&#39;', still.text
    ), still.text
    done = await s.http.post(url.format(fixed), data={"csrf": csrf})
    assert done.status_code == 303, done.text
    run_id = run_workflow_id(tid, "orders/8")

    async def started() -> bool:
        return await s.client.get_workflow_handle(run_id).describe() is not None

    await eventually(started)
    page = await s.http.get(f"/ui/triggers/{tid}")
    assert re.search(rf"data-redriven>Redriven [^<]*<code>{re.escape(run_id)}</code>", page.text)
    missing = await s.http.post(url.format(uuid.uuid4()), data={"csrf": csrf})
    assert missing.status_code == 404 and "dead letter not found" in missing.text


@dataclasses.dataclass
class _WithHealth(TriggerStatus):
    """A status with a field the page has no code for (as a new one would come)."""

    health: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_status_shows_stream_health_and_held_first_and_new_objects_generically() -> None:
    status = _WithHealth(
        trigger_id="t",
        workflow_id="w",
        name="n",
        enabled=False,
        config_version=1,
        stream=StreamStatus(state="paused", paused_by_backpressure=True, lag=42, reconnects=2),
        held=3,
        health={"state": "degraded", "reason": "lag over 1000"},
    )
    html_text = templates.get_template("status.html").render(rows=status_view.rows(status))
    groups = re.findall(r'<section class="group([^"]*)" data-field="([a-z_]+)"', html_text)
    assert groups == [("", "health"), (" attention", "stream")]
    assert re.search(r"data-held>3 stream event\(s\) held", html_text)
    for field, text in [
        ("stream.state", "paused"),
        ("stream.lag", "42"),
        ("stream.reconnects", "2"),
        ("stream.dead_letters", "0"),
        ("health.reason", "lag over 1000"),
    ]:
        assert re.search(rf'data-field="{field}">\s*<dt>[^<]*</dt>\s*<dd>{text}</dd>', html_text)
    assert re.search(r'kv attention" data-field="stream.paused_by_backpressure">', html_text)
    # The groups come before the plain fields, the stream's state first of its group.
    assert html_text.index('data-field="stream"') < html_text.index('data-field="running"')
