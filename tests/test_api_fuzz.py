"""The API under a fuzzer: schemathesis generates requests from the served OpenAPI (valid
and invalid ones) and fails on any 5xx, any answer the OpenAPI does not document, any body
that does not match its documented schema, and any invalid request that is accepted.

The app is the real one on a real socket (uvicorn), on each database, with its worker and
the Temporal dev server. Known trigger ids and user names are offered to the path
parameters, so the fuzzer reaches past the 404s into PATCH, shares, the dry run, status and
the webhook route.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel
from temporalio.client import Client

from api.errors import answers
from tests.conftest import Stack, make_stack
from tests.fuzzing import run_schemathesis, toml_config
from tests.helpers import github_trigger
from tests.live_server import serve

API = "/api/triggers"


async def _seed(s: Stack) -> list[str]:
    """Triggers of several kinds: alice's (one shared with bob), and one of bob's."""
    mine = [
        await s.create_trigger(github_trigger("hook")),
        await s.create_trigger(
            {"name": "tick", "provider": "cron", "config": {"every": "1h"}, "enabled": False}
        ),
        await s.create_trigger(
            {
                **github_trigger("graph"),
                "condition": 'event.type != ""',
                "target": {
                    "kind": "graph",
                    "graph": {"nodes": [{"id": "note", "type": "log", "message": "hi"}]},
                },
            }
        ),
    ]
    share = {"user": "bob", "role": "editor"}
    r = await s.http.put(f"{API}/{mine[0]['id']}/shares", json=share, headers=s.alice)
    assert r.status_code == 200, r.text
    theirs = await s.create_trigger(github_trigger("bob's"), user=s.bob)
    return [t["id"] for t in [*mine, theirs]]


async def test_fuzz_the_api_with_a_key(stack: Stack, tmp_path: Path) -> None:
    s = stack
    assert s.app is not None
    ids = await _seed(s)
    config = toml_config(
        tmp_path / "schemathesis.toml",
        dictionaries={"triggers": ids, "users": ["bob", "carol", "nobody"], "presets": ["github"]},
        parameters={
            "path.trigger_id": ("triggers", 0.8),
            "path.user_name": ("users", 0.5),
            "path.preset": ("presets", 0.8),
            "body.user": ("users", 0.5),
        },
    )
    async with serve(s.app) as base:
        run = await run_schemathesis(
            base, tmp_path, max_time=15, max_examples=25, headers=s.alice, config=config
        )
        print(run.summary)
        assert run.returncode == 0 and not run.failures, run.explain()
        assert run.report["operations"]["tested"] >= 17, run.explain()
        # The server is still up and answering on a fresh connection.
        r = await s.http.get(API, headers=s.alice)
        assert r.status_code == 200


async def test_fuzz_the_api_without_a_key(sqlite_stack: Stack, tmp_path: Path) -> None:
    s = sqlite_stack
    assert s.app is not None
    ids = await _seed(s)
    config = toml_config(
        tmp_path / "schemathesis.toml",
        dictionaries={"triggers": ids, "presets": ["github"]},
        parameters={"path.trigger_id": ("triggers", 0.8), "path.preset": ("presets", 0.8)},
    )
    async with serve(s.app) as base:
        run = await run_schemathesis(base, tmp_path, max_time=5, max_examples=10, config=config)
        print(run.summary)
        assert run.returncode == 0 and not run.failures, run.explain()
    # Nothing was created or changed without a key.
    listed = (await s.http.get(API, headers=s.alice)).json()
    assert listed["total"] == 3 and all(t["config_version"] == 1 for t in listed["items"])


class _Liar(BaseModel):
    count: int


def _canary_app(app: FastAPI) -> FastAPI:
    """Two routes that break the rules on purpose: a crash, and an answer that is not what
    the OpenAPI says."""

    async def crash() -> dict[str, str]:
        raise RuntimeError("boom")

    async def liar() -> dict[str, str]:
        return {"count": "not a number"}

    app.add_api_route("/canary/crash", crash, methods=["GET"], responses=answers(401))
    app.add_api_route(
        "/canary/liar",
        liar,
        methods=["GET"],
        response_model=None,
        responses={200: {"model": _Liar}},
    )
    return app


async def test_the_fuzzer_fails_on_a_5xx_and_on_a_wrong_answer(
    sqlite_url: str, client: Client, task_queue: str, secret_keys: str, tmp_path: Path
) -> None:
    """The harness above can fail: on the real app with two broken routes added, it reports
    the 500 and the schema violation (and nothing about the real routes, excluded here)."""
    async with make_stack(sqlite_url, client, task_queue, secret_keys) as s:
        assert s.app is not None
        _canary_app(s.app)
        async with serve(s.app) as base:
            run = await run_schemathesis(
                base,
                tmp_path,
                max_time=2,
                max_examples=3,
                extra=("--include-path-regex", "^/canary/", "--phases", "examples,fuzzing"),
            )
    found = {f.get("type") for f in run.failures}
    assert run.returncode != 0, run.explain()
    assert {"ServerError", "JsonSchemaError"} <= found, run.explain()
