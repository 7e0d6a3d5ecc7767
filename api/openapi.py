"""The OpenAPI document as served: FastAPI's, plus what it cannot see.

Every string a request carries passes ``api.text`` (no NUL), wherever it is: in our models,
in a provider's ``Config``, in a graph node. The document says so on each string schema
reachable from a request (parameters and bodies) that has no pattern, format or fixed
values of its own, and on the keys of each free-form object.

And a created trigger's ``id`` is what the ``{trigger_id}`` routes take: the create answer
carries OpenAPI links to each of them (and ``config.preset`` to the webhook URL's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from api.text import NO_NUL_PATTERN, NON_BLANK_PATTERN

_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "not", "additionalProperties", "propertyNames")
_FIXED = ("pattern", "format", "enum", "const")
_NUL_FREE = (NO_NUL_PATTERN, NON_BLANK_PATTERN)


def _request_schemas(doc: dict[str, Any]) -> list[dict[str, Any]]:
    roots: list[dict[str, Any]] = []
    for item in doc.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if not operation:
                continue
            roots.extend(p["schema"] for p in operation.get("parameters", ()) if "schema" in p)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    roots.append(media["schema"])
    return roots


def state_text_rules(doc: dict[str, Any]) -> None:
    """Add the no-NUL pattern to the request side of ``doc``, in place."""
    components = doc.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    stack = _request_schemas(doc)
    while stack:
        schema = stack.pop()
        if not isinstance(schema, dict):
            continue
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen and name in components:
                seen.add(name)
                stack.append(components[name])
            continue
        if schema.get("type") == "string" and not any(k in schema for k in _FIXED):
            schema["pattern"] = NO_NUL_PATTERN
        elif "pattern" in schema and schema["pattern"] not in _NUL_FREE:
            # A pattern of its own may allow NUL; both must hold.
            schema.setdefault("allOf", []).append({"pattern": NO_NUL_PATTERN})
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            schema.setdefault("propertyNames", {"pattern": NO_NUL_PATTERN})
        stack.extend(schema.get("properties", {}).values())
        stack.extend(schema.get("patternProperties", {}).values())
        for key in _SUBSCHEMA_LISTS:
            stack.extend(schema.get(key, ()))
        for key in _SUBSCHEMAS:
            if isinstance(schema.get(key), dict):
                stack.append(schema[key])


def link_created_trigger(doc: dict[str, Any]) -> None:
    """Links from ``POST /api/triggers``'s 201 to every operation that takes its id."""
    links: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        if "{trigger_id}" not in path:
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not operation or "operationId" not in operation:
                continue
            parameters = {"trigger_id": "$response.body#/id"}
            if "{preset}" in path:
                parameters["preset"] = "$response.body#/config/preset"
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": parameters,
            }
    created = doc.get("paths", {}).get("/api/triggers", {}).get("post", {})
    answer = created.get("responses", {}).get("201")
    if answer is not None and links:
        answer["links"] = links


def install(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI with the text rules and links (generated once, on first use)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            state_text_rules(doc)
            link_created_trigger(doc)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
