"""The ``/api/triggers`` API: CRUD, validation, secrecy, ownership, shares and health."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_trigger, post_github
from triggers.core.events import trigger_workflow_id

API = "/api/triggers"
RUNNING, COMPLETED = WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED
Call = tuple[str, str, Any]  # method, path, JSON body or None


def gh(**fields: Any) -> dict[str, Any]:
    """A valid github trigger body with some top-level fields replaced."""
    return {**github_trigger(), **fields}


def cfg(**fields: Any) -> dict[str, Any]:
    return {"preset": "github", **fields}


def clean(r: httpx.Response, code: int) -> None:
    assert r.status_code == code, r.text
    assert "Traceback" not in r.text


def ok(r: httpx.Response, code: int = 200) -> Any:
    """The JSON body of a response with status ``code``."""
    clean(r, code)
    return r.json()


def locs(r: httpx.Response) -> list[list[str | int]]:
    """The ``loc`` of each error of a 422, after checking it is a clean 422."""
    clean(r, 422)
    return [e["loc"] for e in r.json()["detail"]]


async def call(s: Stack, user: dict[str, str], method: str, path: str, body: Any) -> httpx.Response:
    return await s.http.request(method, path, json=body, headers=user)


async def no_500(pending: Awaitable[httpx.Response]) -> httpx.Response:
    """In process, an unhandled error propagates instead of becoming a 500: report it as one."""
    try:
        r = await pending
    except Exception as exc:
        pytest.fail(f"unhandled {type(exc).__name__} (a 500 in production): {exc}")
    assert r.status_code < 500, r.text
    return r


def actions(url: str) -> list[Call]:
    """Every call on one trigger but deleting it (or changing its secrets)."""
    return [
        ("GET", url, None),
        ("PATCH", url, {"name": "renamed"}),
        ("POST", f"{url}/disable", None),
        ("POST", f"{url}/enable", None),
        ("GET", f"{url}/status", None),
        ("PUT", f"{url}/shares", {"user": "carol", "role": "editor"}),
        ("GET", f"{url}/shares", None),
        ("DELETE", f"{url}/shares/carol", None),
    ]


async def workflow_status(s: Stack, tid: str) -> WorkflowExecutionStatus | None:
    return (await s.client.get_workflow_handle(trigger_workflow_id(tid)).describe()).status


async def wait_workflow(s: Stack, tid: str, want: WorkflowExecutionStatus) -> None:
    async def reached() -> bool:
        return await workflow_status(s, tid) == want

    await eventually(reached)


async def test_create_returns_the_trigger_and_starts_its_workflow(stack: Stack) -> None:
    s = stack
    t = ok(await s.http.post(API, json=github_trigger("deploys"), headers=s.alice), 201)
    tid = str(uuid.UUID(t["id"]))
    assert (t["name"], t["provider"], t["config"]["preset"]) == ("deploys", "webhook", "github")
    # WebhookConfig's defaults are filled in.
    assert t["config"]["encoding"] == "hex" and t["config"]["tolerance_seconds"] == 300
    assert t["config"]["prefix"] == "" and t["config"]["forward_headers"] == []
    assert t["config"]["signature_header"] is None
    assert t["target"]["kind"] == "run" and t["target"]["workflow_type"] is None
    assert t["condition"] is None and t["last_error"] is None
    assert (t["enabled"], t["status"], t["config_version"]) == (True, "active", 1)
    assert t["secret_names"] == ["signing_secret"] and t["role"] == "owner"
    assert t["webhook_url"].endswith(f"/webhooks/github/{tid}")
    assert t["workflow_id"] == f"trigger:{tid}"

    assert ok(await s.http.get(f"{API}/{tid}", headers=s.alice)) == t
    await wait_workflow(s, tid, RUNNING)

    # A trigger created disabled starts no workflow.
    off = await s.create_trigger(gh(name="off", enabled=False))
    assert (off["enabled"], off["status"]) == (False, "disabled")
    with pytest.raises(RPCError) as exc:
        await workflow_status(s, off["id"])
    assert exc.value.status == RPCStatusCode.NOT_FOUND


async def test_list_paginates_filters_and_is_per_user(stack: Stack) -> None:
    s = stack
    made = [await s.create_trigger(github_trigger(f"t{i}")) for i in range(5)]
    bobs = await s.create_trigger(github_trigger("bob's"), user=s.bob)

    pages = []
    for offset in (0, 2, 4):
        page = ok(await s.http.get(API, params={"limit": 2, "offset": offset}, headers=s.alice))
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        pages.append(page["items"])
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [t["id"] for p in pages for t in p]
    assert len(set(ids)) == 5
    assert ids == [t["id"] for t in reversed(made)]  # newest first
    assert bobs["id"] not in ids

    r = await s.http.get(API, params={"provider": "webhook"}, headers=s.alice)
    assert r.json()["total"] == 5
    r = await s.http.get(API, params={"provider": "nope"}, headers=s.alice)
    assert r.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}

    clean(await s.http.post(f"{API}/{made[1]['id']}/disable", headers=s.alice), 200)
    r = await s.http.get(API, params={"enabled": "false"}, headers=s.alice)
    assert [t["id"] for t in r.json()["items"]] == [made[1]["id"]] and r.json()["total"] == 1
    r = await s.http.get(API, params={"enabled": "true", "provider": "webhook"}, headers=s.alice)
    assert r.json()["total"] == 4 and made[1]["id"] not in {t["id"] for t in r.json()["items"]}

    r = await s.http.get(API, headers=s.bob)
    assert [t["id"] for t in r.json()["items"]] == [bobs["id"]] and r.json()["total"] == 1
    assert (await s.http.get(API, headers=s.carol)).json()["total"] == 0

    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"enabled": "maybe"}):
        assert ["query", *params] in locs(await s.http.get(API, params=params, headers=s.alice))


async def test_patch_changes_name_config_and_secrets(stack: Stack) -> None:
    s = stack
    tid = (await s.create_trigger(github_trigger("before")))["id"]
    url = f"{API}/{tid}"

    async def patch(body: Any) -> httpx.Response:
        return await s.http.patch(url, json=body, headers=s.alice)

    t = ok(await patch({"name": "after"}))
    assert t["name"] == "after" and t["config_version"] == 2

    t = ok(await patch({"config": {"preset": "generic", "signature_header": "X-Sig"}}))
    assert t["config"]["preset"] == "generic" and t["config"]["signature_header"] == "X-Sig"
    assert t["config"]["encoding"] == "hex"
    assert t["config_version"] == 3 and t["name"] == "after"
    assert t["webhook_url"].endswith(f"/webhooks/generic/{tid}")
    assert (await s.http.get(url, headers=s.alice)).json() == t

    async def workflow_has_v3() -> bool:  # the running workflow hears of the change
        st = (await s.http.get(f"{url}/status", headers=s.alice)).json()
        return bool(st["running"] and st["config_version"] == 3)

    await eventually(workflow_has_v3)

    names = ok(await patch({"secrets": {"previous_signing_secret": "x"}}))["secret_names"]
    assert names == ["previous_signing_secret", "signing_secret"]
    t = ok(await patch({"secrets": {"previous_signing_secret": None}}))
    assert t["secret_names"] == ["signing_secret"] and t["config_version"] == 5

    # Refused changes leave the trigger as it was.
    r = await patch({"secrets": {"signing_secret": None}})
    assert ["body", "secrets", "signing_secret"] in locs(r)
    assert all(loc[:2] == ["body", "config"] for loc in locs(await patch({"config": {}})))
    assert ["body", "config", "preset"] in locs(await patch({"config": {"preset": "gitlab"}}))
    assert ["body", "name"] in locs(await patch({"name": ""}))
    assert ["body", "provider"] in locs(await patch({"provider": "webhook"}))
    now = (await s.http.get(url, headers=s.alice)).json()
    assert now["secret_names"] == ["signing_secret"] and now["config_version"] == 5
    assert now == t


CREATE_422: list[tuple[dict[str, Any], list[str | int]]] = [
    # (body, a loc the 422 must carry)
    (gh(provider="nope"), ["body", "provider"]),
    (gh(config={"preset": "gitlab"}), ["body", "config", "preset"]),
    (gh(config={}), ["body", "config", "preset"]),
    (gh(config=cfg(colour="red")), ["body", "config", "colour"]),
    (gh(config=cfg(tolerance_seconds="soon")), ["body", "config", "tolerance_seconds"]),
    (gh(config=cfg(forward_headers=["Authorization"])), ["body", "config"]),
    (gh(secrets={}), ["body", "secrets", "signing_secret"]),
    (gh(secrets={"signing_secret": "s", "api_token": "t"}), ["body", "secrets", "api_token"]),
    (gh(secrets={"signing_secret": " "}), ["body", "secrets", "signing_secret"]),
    (gh(target={"kind": "workflow", "task_queue": "q"}), ["body", "target"]),
    (gh(target={"kind": "cron"}), ["body", "target", "kind"]),
    (gh(name=""), ["body", "name"]),
    (gh(name="n" * 201), ["body", "name"]),
    ({k: v for k, v in github_trigger().items() if k != "name"}, ["body", "name"]),
    (gh(name=123), ["body", "name"]),
    (gh(enabled="maybe"), ["body", "enabled"]),
    (gh(config=["github"]), ["body", "config"]),
    (gh(secrets="s"), ["body", "secrets"]),
    (gh(colour="red"), ["body", "colour"]),
]


async def test_create_validation_names_the_field(stack: Stack) -> None:
    s = stack
    for body, loc in CREATE_422:
        got = locs(await s.http.post(API, json=body, headers=s.alice))
        assert any(g[: len(loc)] == loc for g in got), (body, got)

    # generic needs signature_header: a model-level error on config that names the field.
    r = await s.http.post(API, json=gh(config={"preset": "generic"}), headers=s.alice)
    assert [loc[:2] for loc in locs(r)] == [["body", "config"]]
    assert "signature_header" in r.text

    json_ct = {**s.alice, "content-type": "application/json"}
    assert locs(await s.http.post(API, content=b'{"name": ', headers=json_ct))[0][0] == "body"
    assert (await s.http.get(API, headers=s.alice)).json()["total"] == 0  # nothing was created


async def test_paths_and_authentication(stack: Stack) -> None:
    s = stack
    url = f"{API}/{(await s.create_trigger(github_trigger()))['id']}"
    assert locs(await s.http.get(f"{API}/not-a-uuid", headers=s.alice)) == [["path", "trigger_id"]]
    r = await s.http.patch(f"{API}/123", json={"name": "x"}, headers=s.alice)
    assert ["path", "trigger_id"] in locs(r)
    missing = f"{API}/{uuid.uuid4()}"
    for method, path, body in [*actions(missing), ("DELETE", missing, None)]:
        clean(await call(s, s.alice, method, path, body), 404)

    for auth in ("", "Bearer tt_not-a-real-key", "Basic YWxpY2U6cHc=", "Bearer"):
        headers = {"Authorization": auth} if auth else {}
        for method, path, body in [("GET", API, None), ("POST", API, gh()), *actions(url)]:
            r = await call(s, headers, method, path, body)
            clean(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
    t = ok(await s.http.get(url, headers=s.alice))
    assert (t["name"], t["config_version"]) == ("gh", 1)


async def test_secrets_never_appear_in_responses(stack: Stack) -> None:
    s = stack
    secret = f"zz-very-secret-{uuid.uuid4().hex}"
    previous = f"zz-old-secret-{uuid.uuid4().hex}"
    r = await s.http.post(API, json=github_trigger(secret=secret), headers=s.alice)
    clean(r, 201)
    texts = [r.text]
    url = f"{API}/{r.json()['id']}"
    rotate = {"secrets": {"previous_signing_secret": previous}}
    for method, path, body in [("PATCH", url, rotate), ("GET", API, None), *actions(url)]:
        r = await call(s, s.alice, method, path, body)
        assert r.status_code in (200, 204), (method, path, r.text)
        texts.append(r.text)
    clean(await call(s, s.alice, "PUT", f"{url}/shares", {"user": "bob", "role": "viewer"}), 200)
    for path in (url, API):  # what bob sees as a viewer
        r = await s.http.get(path, headers=s.bob)
        clean(r, 200)
        texts.append(r.text)

    # Secrets sent in the wrong place or with the wrong type are refused without an echo.
    number = 98765432109876
    refused: list[Call] = [
        ("POST", API, gh(config=cfg(signing_secret=secret))),
        ("POST", API, gh(signing_secret=secret)),
        ("POST", API, gh(secrets={"signing_secret": number})),
        ("POST", API, gh(secrets={"signing_secret": [secret]})),
        ("POST", API, gh(secrets={"previous_signing_secret": secret})),
        ("POST", API, gh(config={"preset": secret})),
        ("PATCH", url, {"secrets": {"signing_secret": number}}),
        ("PATCH", url, {"secrets": {"webhook_secret": secret}}),
        ("PATCH", url, {"config": cfg(signing_secret=secret)}),
    ]
    for method, path, body in refused:
        r = await call(s, s.alice, method, path, body)
        locs(r)
        texts.append(r.text)
    for text in texts:
        assert secret not in text and previous not in text and str(number) not in text


async def test_other_users_trigger_is_a_404_and_stays_unchanged(stack: Stack) -> None:
    s = stack
    t = await s.create_trigger(github_trigger("alice's"))
    url = f"{API}/{t['id']}"
    clean(await call(s, s.alice, "PUT", f"{url}/shares", {"user": "carol", "role": "viewer"}), 200)
    rekey = {"secrets": {"signing_secret": "bobs"}}
    for method, path, body in [*actions(url), ("PATCH", url, rekey), ("DELETE", url, None)]:
        r = await call(s, s.bob, method, path, body)
        clean(r, 404)
        assert r.json() == {"detail": "trigger not found"}, (method, path)

    now = (await s.http.get(url, headers=s.alice)).json()
    assert (now["name"], now["enabled"], now["config_version"]) == ("alice's", True, 1)
    assert now["updated_at"] == t["updated_at"]
    shares = (await s.http.get(f"{url}/shares", headers=s.alice)).json()
    assert shares == [{"user": "carol", "role": "viewer"}]
    assert t["id"] not in {x["id"] for x in (await s.http.get(API, headers=s.bob)).json()["items"]}


async def test_another_secret_cannot_fire_a_trigger(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    alices = (await s.create_trigger(github_trigger("alice's")))["id"]
    bobs = (await s.create_trigger(github_trigger("bob's", secret="bobs-own"), user=s.bob))["id"]

    clean(await post_github(s.http, alices, delivery="guess-1", secret="bobs-own"), 401)
    # Positive control: the same delivery, validly signed for bob's trigger, starts a run.
    clean(await post_github(s.http, bobs, delivery="guess-1", secret="bobs-own"), 202)

    async def bob_ran() -> bool:
        return await count_runs(s.client, bobs) == 1

    await eventually(bob_ran)
    assert await count_runs(s.client, alices) == 0
    st = (await s.http.get(f"{API}/{alices}/status", headers=s.alice)).json()
    assert st["running"] is True and st["events_received"] == 0 and st["runs_started"] == 0


async def test_shares_grant_viewer_then_editor_rights(stack: Stack) -> None:
    s = stack
    tid = (await s.create_trigger(github_trigger("shared")))["id"]
    url, shares = f"{API}/{tid}", f"{API}/{tid}/shares"

    async def share(user: str, role: str) -> httpx.Response:
        return await s.http.put(shares, json={"user": user, "role": role}, headers=s.alice)

    assert ok(await share("bob", "viewer")) == {"user": "bob", "role": "viewer"}
    got = ok(await s.http.get(url, headers=s.bob))
    assert got["role"] == "viewer" and got["name"] == "shared"
    listed = (await s.http.get(API, headers=s.bob)).json()["items"]
    assert [(x["id"], x["role"]) for x in listed] == [(tid, "viewer")]
    for method, path, body in [*actions(url), ("DELETE", url, None)]:  # a viewer only reads
        clean(await call(s, s.bob, method, path, body), 200 if method == "GET" else 403)

    assert (await share("bob", "editor")).json() == {"user": "bob", "role": "editor"}
    assert (await s.http.get(shares, headers=s.alice)).json() == [{"user": "bob", "role": "editor"}]
    # An editor changes, disables and enables, but neither deletes nor manages shares.
    for method, path, body in [
        *actions(url),
        ("DELETE", url, None),
        ("DELETE", f"{shares}/bob", None),
    ]:
        r = await call(s, s.bob, method, path, body)
        clean(r, 403 if method in ("PUT", "DELETE") else 200)
        if method in ("PATCH", "POST"):
            assert r.json()["role"] == "editor"
    clean(await s.http.get(url, headers=s.carol), 404)
    now = ok(await s.http.get(url, headers=s.alice))
    assert (now["name"], now["enabled"], now["config_version"]) == ("renamed", True, 4)

    assert locs(await share("nobody", "viewer")) == [["body", "user"]]
    assert locs(await share("alice", "viewer")) == [["body", "user"]]
    assert ["body", "role"] in locs(await share("carol", "owner"))

    clean(await s.http.delete(f"{shares}/bob", headers=s.alice), 204)
    clean(await s.http.get(url, headers=s.bob), 404)
    assert (await s.http.get(API, headers=s.bob)).json()["total"] == 0
    clean(await s.http.delete(f"{shares}/bob", headers=s.alice), 404)
    clean(await s.http.delete(f"{shares}/nobody", headers=s.alice), 404)
    assert (await s.http.get(shares, headers=s.alice)).json() == []


async def test_delete_removes_the_trigger_and_ends_its_workflow(stack: Stack) -> None:
    s = stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    url = f"{API}/{tid}"
    await wait_workflow(s, tid, RUNNING)
    clean(await call(s, s.alice, "PUT", f"{url}/shares", {"user": "bob", "role": "editor"}), 200)

    r = await s.http.delete(url, headers=s.alice)
    clean(r, 204)
    assert r.content == b""
    for user in (s.alice, s.bob):
        clean(await s.http.get(url, headers=user), 404)
    clean(await s.http.delete(url, headers=s.alice), 404)
    assert (await s.http.get(API, headers=s.bob)).json()["total"] == 0
    await wait_workflow(s, tid, COMPLETED)
    clean(await post_github(s.http, tid, delivery="after-delete"), 404)

    # A disabled trigger whose workflow already ended, and one never started, delete too.
    off = (await s.create_trigger(github_trigger("off")))["id"]
    clean(await s.http.post(f"{API}/{off}/disable", headers=s.alice), 200)
    await wait_workflow(s, off, COMPLETED)
    clean(await s.http.delete(f"{API}/{off}", headers=s.alice), 204)
    never = (await s.create_trigger(gh(name="never", enabled=False)))["id"]
    clean(await s.http.delete(f"{API}/{never}", headers=s.alice), 204)
    assert (await s.http.get(API, headers=s.alice)).json()["total"] == 0


async def test_health_readiness_and_openapi(stack: Stack) -> None:
    s = stack
    assert ok(await s.http.get("/healthz")) == {"status": "ok"}
    ready = ok(await s.http.get("/readyz"))
    assert ready == {"ready": True, "database": "ok", "temporal": "ok", "search_attributes": "ok"}
    doc = ok(await s.http.get("/openapi.json"))
    paths = doc["paths"]
    assert "/api/triggers" in paths and "/webhooks/{preset}/{trigger_id}" in paths
    assert {"get", "post"} <= set(paths["/api/triggers"])
    public = doc["components"]["schemas"]["TriggerPublic"]["properties"]
    assert "secrets" not in public and "secret_names" in public  # write-only


# --- Inputs the databases cannot store are refused with 422, never a 500 ---


async def test_huge_offset_is_a_client_error(stack: Stack) -> None:
    r = await no_500(stack.http.get(API, params={"offset": 10**20}, headers=stack.alice))
    assert ["query", "offset"] in locs(r)


async def test_non_finite_numbers_are_refused(stack: Stack) -> None:
    json_ct = {**stack.alice, "content-type": "application/json"}
    for bad in (
        b'"config": {"preset": "github", "rate_limit_per_second": Infinity}',
        b'"config": {"preset": "github", "tolerance_seconds": 5, "forward_headers": [], '
        b'"max_body_bytes": NaN}',
    ):
        raw = b'{"name": "n", "provider": "webhook", "secrets": {"signing_secret": "s"}, ' + bad
        r = await no_500(stack.http.post(API, content=raw + b"}", headers=json_ct))
        assert r.status_code == 422, r.text


async def test_nul_characters_are_not_a_server_error(stack: Stack) -> None:
    s = stack
    for body in (
        gh(name="a\x00b"),
        gh(condition='event.type == "\x00"'),
        gh(config=cfg(prefix="\x00")),
    ):
        r = await no_500(s.http.post(API, json=body, headers=s.alice))
        assert r.status_code in (201, 422)
    tid = (await s.create_trigger(github_trigger()))["id"]
    share = {"user": "a\x00", "role": "viewer"}
    r = await no_500(s.http.put(f"{API}/{tid}/shares", json=share, headers=s.alice))
    assert r.status_code in (404, 422)
    # Every trigger workflow started belongs to a listed trigger: none was orphaned.
    listed = ok(await s.http.get(API, headers=s.alice))
    total: int = listed["total"]
    query = f'TriggerOwner="{listed["items"][0]["owner_id"]}" AND WorkflowType="TriggerWorkflow"'

    async def no_orphans() -> bool:
        return (await s.client.count_workflows(query)).count == total

    await eventually(no_orphans, timeout=5)
