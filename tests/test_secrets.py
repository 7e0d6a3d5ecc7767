"""Secrets appear nowhere: not in Temporal history, API responses or logs."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, post_github
from triggers.core.events import trigger_workflow_id

GH_SECRET = "gh-secret-7f3a9c-never-shown"
KEY_SECRET = "apikey-secret-51be02-never-shown"
NEW_SECRET = "rotated-secret-c0ffee-never-shown"


async def test_secrets_stay_out_of_history_responses_and_logs(
    sqlite_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    s = sqlite_stack
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    gh = await s.create_trigger(
        {
            "name": "gh",
            "provider": "webhook",
            "config": {"preset": "github"},
            "secrets": {"signing_secret": GH_SECRET},
        }
    )
    ak = await s.create_trigger(
        {
            "name": "key",
            "provider": "webhook",
            "config": {"preset": "apikey", "signature_header": "X-Token"},
            "secrets": {"signing_secret": KEY_SECRET},
        }
    )
    texts += [str(gh), str(ak)]

    # Valid and rejected deliveries on both; the apikey sender puts the secret in a header.
    for i in range(3):
        texts.append((await post_github(s.http, gh["id"], delivery=f"d{i}", secret=GH_SECRET)).text)
        texts.append((await post_github(s.http, gh["id"], delivery=f"x{i}", secret="wrong")).text)
        r = await s.http.post(
            f"/webhooks/apikey/{ak['id']}",
            json={"n": i},
            headers={"X-Token": KEY_SECRET, "Authorization": f"Bearer {KEY_SECRET}"},
        )
        assert r.status_code == 202, r.text
        texts.append(r.text)
        r = await s.http.post(
            f"/webhooks/apikey/{ak['id']}", json={"n": i}, headers={"X-Token": KEY_SECRET + "x"}
        )
        assert r.status_code == 401
        texts.append(r.text)

    # Every API route that shows a trigger.
    for tid in (gh["id"], ak["id"]):
        for path in (f"/api/triggers/{tid}", f"/api/triggers/{tid}/status", "/api/triggers"):
            texts.append((await s.http.get(path, headers=s.alice)).text)
    r = await s.http.patch(
        f"/api/triggers/{gh['id']}",
        json={"secrets": {"signing_secret": NEW_SECRET, "previous_signing_secret": GH_SECRET}},
        headers=s.alice,
    )
    assert r.status_code == 200 and r.json()["secret_names"] == [
        "previous_signing_secret",
        "signing_secret",
    ]
    texts.append(r.text)
    texts.append((await s.http.post(f"/api/triggers/{gh['id']}/disable", headers=s.alice)).text)
    texts.append((await s.http.post(f"/api/triggers/{gh['id']}/enable", headers=s.alice)).text)
    # Rotation: both secrets sign valid deliveries now.
    assert (
        await post_github(s.http, gh["id"], delivery="n1", secret=NEW_SECRET)
    ).status_code == 202
    assert (await post_github(s.http, gh["id"], delivery="n2", secret=GH_SECRET)).status_code == 202

    async def all_runs() -> bool:
        return (
            await count_runs(s.client, gh["id"]) == 5 and await count_runs(s.client, ak["id"]) == 3
        )

    await eventually(all_runs)

    histories: list[str] = []
    for tid in (gh["id"], ak["id"]):
        async for wf in s.client.list_workflows(
            f'TriggerId="{tid}" OR WorkflowId="{trigger_workflow_id(tid)}"'
        ):
            histories.append((await s.client.get_workflow_handle(wf.id).fetch_history()).to_json())
    assert len(histories) >= 8 + 1  # the runs and at least one trigger workflow
    assert any("n1" in h for h in histories)  # the test can see event data in histories

    for secret in (GH_SECRET, KEY_SECRET, NEW_SECRET):
        for h in histories:
            assert secret not in h
        for t in texts:
            assert secret not in t
        assert secret not in caplog.text
