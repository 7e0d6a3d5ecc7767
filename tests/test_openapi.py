"""The OpenAPI tells the truth: every route documents its error answers and their body, the
create body is one member per registered provider with that provider's config schema, the
dry run's two forms are in it, and what the schema accepts is what the API accepts."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.conftest import Stack
from tests.helpers import github_trigger
from triggers.providers import get_provider, provider_names

API = "/api/triggers"
METHODS = ("get", "put", "post", "delete", "patch")
ERROR_BODIES = {"#/components/schemas/ErrorBody", "#/components/schemas/ValidationErrorBody"}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    ]


async def openapi(s: Stack) -> dict[str, Any]:
    r = await s.http.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_every_route_documents_its_error_answers(sqlite_stack: Stack) -> None:
    doc = await openapi(sqlite_stack)
    for path, method, op in operations(doc):
        answers = op["responses"]
        for code, answer in answers.items():
            if int(code) < 400 or path == "/readyz":
                continue
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref in ERROR_BODIES, (method, path, code)
            assert answer["description"], (method, path, code)
        if path.startswith("/api/"):
            must = {"401", "503"}
            if op.get("parameters") or "requestBody" in op:
                must.add("422")
            if "{trigger_id}" in path:
                must.add("404")
            if "requestBody" in op:
                must.add("400")
            assert must <= set(answers), (method, path, sorted(answers))
            assert "Retry-After" in answers["503"]["headers"]
    assert doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    schemas = doc["components"]["schemas"]
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["type"] == "array"
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 shape is not ours


async def test_provider_configs_and_the_create_union(sqlite_stack: Stack) -> None:
    doc = await openapi(sqlite_stack)
    schemas = doc["components"]["schemas"]
    create = schemas["TriggerCreate"]
    mapping = create["discriminator"]["mapping"]
    assert create["discriminator"]["propertyName"] == "provider"
    assert sorted(mapping) == provider_names()
    assert [m["$ref"] for m in create["oneOf"]] == [mapping[n] for n in provider_names()]
    for name in provider_names():
        info = get_provider(name)
        member = schemas[mapping[name].rsplit("/", 1)[1]]
        assert member["properties"]["provider"]["const"] == name
        config_ref = member["properties"]["config"]
        config_ref = config_ref.get("$ref") or config_ref["anyOf"][0]["$ref"]
        assert config_ref == f"#/components/schemas/{info.config_model.__name__}"
        secrets = member["properties"]["secrets"]
        assert set(secrets["properties"]) == set(info.allowed_secrets)
        assert set(secrets.get("required", ())) == set(info.required_secrets)
        assert member["additionalProperties"] is False
    # A PATCH config is one of the providers' configs.
    patch_config = schemas["TriggerUpdate"]["properties"]["config"]["anyOf"]
    assert {c.get("$ref", "").rsplit("/", 1)[-1] for c in patch_config} >= {
        "WebhookConfig",
        "CronConfig",
        "HttpPollConfig",
        "SqlPollConfig",
    }
    # The dry run: events or last, never both.
    dry = schemas["DryRunIn"]["oneOf"]
    assert [d["$ref"].rsplit("/", 1)[1] for d in dry] == ["DryRunSamples", "DryRunLast"]
    # Every request string states the NUL rule.
    assert schemas["WebhookConfig"]["properties"]["prefix"]["pattern"] == "^[^\\u0000]*$"
    # The create answer links its id to the routes that take it.
    links = doc["paths"][API]["post"]["responses"]["201"]["links"]
    assert len(links) >= 10
    assert all(link["parameters"]["trigger_id"] == "$response.body#/id" for link in links.values())


def _validator(doc: dict[str, Any], component: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def _cron(**config: Any) -> dict[str, Any]:
    return {"name": "c", "provider": "cron", "config": config, "enabled": False}


def _poll(provider: str, **config: Any) -> dict[str, Any]:
    return {"name": "p", "provider": provider, "config": config, "enabled": False}


SQL = {"query": "SELECT id, at FROM t WHERE at >= :cursor", "cursor_column": "at"}
CREATE_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("valid webhook", github_trigger()),
    ("valid cron every", _cron(every="1h")),
    ("valid cron", _cron(cron="0 9 * * 1-5", timezone="Europe/Berlin")),
    ("valid http_poll", _poll("http_poll", url="https://api.example.com/items?x=1")),
    (
        "valid sql_poll",
        _poll(
            "sql_poll",
            url="postgresql+asyncpg://u@db.example.com/app",
            id_column="id",
            initial_cursor=0,
            **SQL,
        ),
    ),
    ("webhook without its secret", {**github_trigger(), "secrets": {}}),
    ("webhook with an unknown secret", {**github_trigger(), "secrets": {"x": "y"}}),
    ("webhook with a blank secret", {**github_trigger(), "secrets": {"signing_secret": " "}}),
    ("webhook with an unknown preset", {**github_trigger(), "config": {"preset": "nope"}}),
    ("cron with neither cron nor every", _cron()),
    ("cron with both", _cron(cron="* * * * *", every="1m")),
    ("cron in an unknown zone", _cron(every="1h", timezone="Mars/Olympus")),
    ("cron with a bad duration", _cron(every="soon")),
    ("http_poll of ftp", _poll("http_poll", url="ftp://example.com/")),
    ("sql_poll of mysql", _poll("sql_poll", url="mysql://h/d", id_column="id", **SQL)),
    ("an unknown provider", {**github_trigger(), "provider": "nope"}),
    ("no name", {k: v for k, v in github_trigger().items() if k != "name"}),
    ("a workflow without a queue", {**github_trigger(), "target": {"kind": "workflow"}}),
    ("a run with a workflow type", {**github_trigger(), "target": {"workflow_type": "W"}}),
    ("a graph without nodes", {**github_trigger(), "target": {"kind": "graph", "graph": {}}}),
    ("an empty condition", {**github_trigger(), "condition": ""}),
]


@pytest.mark.parametrize(("case", "body"), CREATE_BODIES, ids=[c for c, _ in CREATE_BODIES])
async def test_the_schema_accepts_what_the_api_accepts(
    sqlite_stack: Stack, case: str, body: dict[str, Any]
) -> None:
    s = sqlite_stack
    by_schema = _validator(await openapi(s), "TriggerCreate").is_valid(body)
    r = await s.http.post(API, json=body, headers=s.alice)
    assert r.status_code in (201, 422), r.text
    assert by_schema == (r.status_code == 201), (case, by_schema, r.text)
    assert by_schema == case.startswith("valid"), case


async def test_the_dry_run_forms(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    doc = await openapi(s)
    tid = (await s.create_trigger(github_trigger()))["id"]
    validator = _validator(doc, "DryRunIn")
    for body in (
        {"events": [{"id": "e"}]},
        {"events": []},
        {},
        {"events": [{"id": "e"}], "last": 1},
        {"last": 0},
        {"last": 21},
        {"last": 1, "extra": 1},
    ):
        r = await s.http.post(f"{API}/{tid}/test", json=body, headers=s.alice)
        by_schema = validator.is_valid(body)
        assert by_schema == (r.status_code == 200), (body, by_schema, r.text)
