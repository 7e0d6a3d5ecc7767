"""Each sender preset through the HTTP route: valid, tampered, wrong secret, expired, rotated;
and the route's other answers (404, 413, 415, 400, 429)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Stack, eventually
from tests.helpers import SECRET, count_runs, post_github, runs_query
from triggers.core import signatures, vendor_signatures

OLD_SECRET = "old-secret-still-active"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_OLD = "whsec_c2Vjb25kLXNlY3JldC1zdGlsbC1hY3RpdmU="

Signer = Callable[[str, bytes, str, int], dict[str, str]]


def _github(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    return {
        **vendor_signatures.sign_github(secret, body, delivery_id=key),
        "X-GitHub-Event": "push",
    }


def _stripe(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    return vendor_signatures.sign_stripe(secret, body, timestamp=ts)


def _standard(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    return vendor_signatures.sign_standard(secret, body, msg_id=key, timestamp=ts)


def _pagerduty(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    return {**vendor_signatures.sign_pagerduty([secret], body), "X-Webhook-Id": key}


def _generic(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    value = signatures.sign_hmac(secret, body, encoding="base64", prefix="v1=", timestamp=ts)
    return {"X-Signature": value, "X-Timestamp": str(ts), "X-Delivery": key}


def _apikey(secret: str, body: bytes, key: str, ts: int) -> dict[str, str]:
    return {"X-Token": secret, "X-Delivery": key}


def _body(preset: str, key: str) -> bytes:
    if preset == "stripe":
        return json.dumps({"id": key, "type": "charge.succeeded", "data": {"object": {}}}).encode()
    if preset == "pagerduty":
        return json.dumps({"event": {"id": key, "event_type": "incident.triggered"}}).encode()
    return json.dumps({"type": "thing.happened", "n": 1}).encode()


# preset, config, signer, timestamped, new secret, old secret
CASES: list[tuple[str, dict[str, Any], Signer, bool, str, str]] = [
    ("github", {}, _github, False, SECRET, OLD_SECRET),
    ("stripe", {}, _stripe, True, "whsec_stripe_like_secret", OLD_SECRET),
    ("standard", {}, _standard, True, STANDARD_SECRET, STANDARD_OLD),
    ("pagerduty", {}, _pagerduty, False, SECRET, OLD_SECRET),
    (
        "generic",
        {
            "signature_header": "X-Signature",
            "encoding": "base64",
            "prefix": "v1=",
            "timestamp_header": "X-Timestamp",
            "id_header": "X-Delivery",
        },
        _generic,
        True,
        SECRET,
        OLD_SECRET,
    ),
    (
        "apikey",
        {"signature_header": "X-Token", "id_header": "X-Delivery"},
        _apikey,
        False,
        SECRET,
        OLD_SECRET,
    ),
]


@pytest.mark.parametrize(
    ("preset", "config", "sign", "timed", "new", "old"), CASES, ids=[c[0] for c in CASES]
)
async def test_scheme(
    sqlite_stack: Stack,
    preset: str,
    config: dict[str, Any],
    sign: Signer,
    timed: bool,
    new: str,
    old: str,
) -> None:
    s = sqlite_stack
    trigger = await s.create_trigger(
        {
            "name": preset,
            "provider": "webhook",
            "config": {"preset": preset, **config},
            "secrets": {"signing_secret": new, "previous_signing_secret": old},
        }
    )
    tid = trigger["id"]
    url = f"/webhooks/{preset}/{tid}"
    now = int(time.time())

    async def send(key: str, *, secret: str = new, ts: int = now, tamper: bool = False) -> int:
        body = _body(preset, key)
        headers = {"content-type": "application/json", **sign(secret, body, key, ts)}
        sent = body + b" " if tamper else body
        r = await s.http.post(url, content=sent, headers=headers)
        assert "Traceback" not in r.text
        return r.status_code

    expected_runs = {"valid", "rotated"}
    assert await send("valid") == 202
    assert await send("rotated", secret=old) == 202
    if preset != "apikey":
        assert await send("tampered", tamper=True) == 401
    assert await send("wrong", secret="not-the-secret-" + uuid.uuid4().hex) == 401
    if timed:
        # Margins well past the 300 s tolerance: the request itself takes time on a busy box
        # (the exact boundary is tested in test_signatures).
        assert await send("expired", ts=now - 330) == 401
        assert await send("replayed-future", ts=now + 330) == 401
        assert await send("edge", ts=now - 250) == 202
        expected_runs.add("edge")

    async def runs() -> bool:
        return await count_runs(s.client, tid) == len(expected_runs)

    await eventually(runs)
    ids = {wf.id async for wf in s.client.list_workflows(runs_query(tid))}
    assert ids == {f"run:{tid}:{k}" for k in expected_runs}


async def test_unsigned_standard_body_without_id_uses_fingerprint(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    cfg = {"preset": "generic", "signature_header": "X-Sig"}
    tid = (
        await s.create_trigger(
            {
                "name": "g",
                "provider": "webhook",
                "config": cfg,
                "secrets": {"signing_secret": SECRET},
            }
        )
    )["id"]
    body = b'{"a": 1}'
    headers = {"X-Sig": signatures.sign_hmac(SECRET, body), "content-type": "application/json"}
    first = await s.http.post(f"/webhooks/generic/{tid}", content=body, headers=headers)
    second = await s.http.post(f"/webhooks/generic/{tid}", content=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["event_key"] == signatures.fingerprint(body)
    assert second.json()["duplicate"] is True


async def test_route_errors(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    trigger = await s.create_trigger(
        {
            "name": "limits",
            "provider": "webhook",
            "config": {
                "preset": "github",
                "max_body_bytes": 64,
                "rate_limit_per_second": 0.01,
                "rate_limit_burst": 2,
            },
            "secrets": {"signing_secret": SECRET},
        }
    )
    tid = trigger["id"]
    # Unknown trigger, preset mismatch, malformed id: 404.
    assert (await post_github(s.http, str(uuid.uuid4()), delivery="x")).status_code == 404
    body = b'{"a":1}'
    r = await s.http.post(
        f"/webhooks/stripe/{tid}",
        content=body,
        headers=vendor_signatures.sign_stripe(SECRET, body, timestamp=int(time.time())),
    )
    assert r.status_code == 404
    assert (await s.http.post("/webhooks/github/not-a-uuid", content=b"{}")).status_code == 404
    # Over the size limit: 413, before any signature work.
    big = b'{"pad": "' + b"x" * 100 + b'"}'
    assert (await post_github(s.http, tid, delivery="big", body=big)).status_code == 413
    # A body the scheme cannot read: 415 (not JSON), 400 (broken JSON).
    text = b"hello"
    r = await s.http.post(
        f"/webhooks/github/{tid}",
        content=text,
        headers={"content-type": "text/plain", **vendor_signatures.sign_github(SECRET, text, "t1")},
    )
    assert r.status_code == 415, r.text
    broken = b'{"a": '
    r = await s.http.post(
        f"/webhooks/github/{tid}",
        content=broken,
        headers={
            "content-type": "application/json",
            **vendor_signatures.sign_github(SECRET, broken, "t2"),
        },
    )
    assert r.status_code == 400, r.text
    # Rate limit: burst of 2 was used by the two requests above; the next is 429.
    r = await post_github(s.http, tid, delivery="rl-1", body=b"{}")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert await count_runs(s.client, tid) == 0
