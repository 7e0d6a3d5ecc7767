"""The dry run of a graph trigger plans exactly what the real graph runs did."""

from __future__ import annotations

from typing import Any

from tests.conftest import Stack, eventually

TOKEN = "graph-dry-run-token-0001"
GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "big", "type": "filter", "condition": "item.amount > 10"},
        {"id": "kind", "type": "if", "condition": "item.kind == 'a'"},
        {"id": "tag", "type": "set", "values": {"tag": "'A'"}},
        {"id": "note", "type": "log", "message": "'seen ' + string(item.amount)"},
    ],
    "edges": [
        {"source": "big", "target": "kind"},
        {"source": "kind", "target": "tag", "branch": "true"},
        {"source": "kind", "target": "note", "branch": "false"},
        {"source": "tag", "target": "note"},
    ],
}
EVENTS: dict[str, list[dict[str, Any]]] = {
    "mixed": [
        {"amount": 5, "kind": "a"},
        {"amount": 20, "kind": "a"},
        {"amount": 30, "kind": "b"},
    ],
    "small": [{"amount": 1, "kind": "a"}],
    "only-b": [{"amount": 50, "kind": "b"}],
}


async def test_graph_dry_run_matches_the_real_runs(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = {
        "name": "graph",
        "provider": "webhook",
        "config": {"preset": "apikey", "signature_header": "X-Token", "id_header": "X-Id"},
        "secrets": {"signing_secret": TOKEN},
        "target": {"kind": "graph", "graph": GRAPH},
    }
    tid = (await s.create_trigger(body))["id"]
    for key, items in EVENTS.items():
        r = await s.http.post(
            f"/webhooks/apikey/{tid}", json=items, headers={"X-Token": TOKEN, "X-Id": key}
        )
        assert r.status_code == 202, r.text

    real: dict[str, dict[str, tuple[int, int]]] = {}
    for key in EVENTS:
        handle = s.client.get_workflow_handle(f"run:{tid}:{key}")

        async def result(h: Any = handle) -> dict[str, Any]:
            out: dict[str, Any] = await h.result()
            return out

        nodes = (await eventually(result))["nodes"]
        real[key] = {n["node_id"]: (n["items_in"], n["items_out"]) for n in nodes if n["items_in"]}

    r = await s.http.post(f"/api/triggers/{tid}/test", json={"last": 3}, headers=s.alice)
    assert r.status_code == 200, r.text
    planned: dict[str, dict[str, tuple[int, int]]] = {}
    for res in r.json()["results"]:
        assert res["would_start"] is True
        planned[res["event_key"]] = {
            n["node_id"]: (len(n["items_in"]), len(n["items_out"]))
            for n in res["graph"]["nodes"]
            if n["items_in"]
        }
    assert planned == real
    # And the decisions are the ones the graph describes.
    assert real["mixed"] == {"big": (3, 2), "kind": (2, 2), "tag": (1, 1), "note": (2, 2)}
    assert real["small"] == {"big": (1, 0)}
    assert real["only-b"] == {"big": (1, 1), "kind": (1, 1), "note": (1, 1)}
