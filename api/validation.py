"""Validation errors in FastAPI's own 422 shape, without echoing input (it may hold secrets)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from api.schemas import TargetIn
from api.text import JSON_VALUE_ERROR
from triggers.core.cel_errors import ExpressionError
from triggers.core.conditions import Compiled, compile_expression
from triggers.core.graph import Graph, GraphError, parse_graph
from triggers.providers import ProviderInfo, UnknownProvider, get_provider, provider_names


def _shown(part: Any, limit: int = 200) -> str:
    """A location part or message fit for a JSON response: lone surrogates (which JSON
    responses cannot carry) replaced, and cut to ``limit`` characters (keys are user input)."""
    text = str(part)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "replace").decode("utf-8")


def clean_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """Keep location, message and type; drop ``input`` and ``ctx``, which can echo secrets.
    A refused value inside free-form JSON gets its path appended to the location."""
    out = []
    for err in errors:
        if isinstance(err, Mapping):
            raw = list(err.get("loc", ()))
            ctx = err.get("ctx") or {}
            if err.get("type") == JSON_VALUE_ERROR and isinstance(ctx, Mapping):
                raw.extend(ctx.get("path", ()))
            loc = [p if isinstance(p, int) else _shown(p) for p in raw]
            out.append(
                {
                    "loc": loc,
                    "msg": _shown(err.get("msg", ""), 1000),
                    "type": str(err.get("type", "")),
                }
            )
    return out


def invalid(
    loc: Sequence[str | int], msg: str, type_: str = "value_error"
) -> RequestValidationError:
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": clean_errors(exc.errors())})


def provider_or_422(name: str) -> ProviderInfo:
    try:
        return get_provider(name)
    except UnknownProvider:
        raise invalid(
            ("body", "provider"), f"unknown provider {name!r}; known: {', '.join(provider_names())}"
        ) from None


def validate_config(info: ProviderInfo, config: Mapping[str, Any]) -> BaseModel:
    try:
        return info.config_model.model_validate(dict(config))
    except ValidationError as exc:
        errors = [
            {**e, "loc": ("body", "config", *e["loc"])} for e in exc.errors(include_input=False)
        ]
        raise RequestValidationError(errors) from None


def validate_secrets(info: ProviderInfo, secrets: Mapping[str, str | None]) -> None:
    for name, value in secrets.items():
        if not info.allows_secret(name):
            names = sorted(info.allowed_secrets)
            if info.secret_pattern_help:
                names.append(f"names of {info.secret_pattern_help}")
            elif info.secret_pattern:
                names.append(f"names matching {info.secret_pattern}")
            allowed = ", ".join(names) or "none"
            raise invalid(
                ("body", "secrets", name), f"unknown secret for {info.name}; allowed: {allowed}"
            )
        if value is not None and not value.strip():
            raise invalid(("body", "secrets", name), "must not be empty")


def require_secrets(info: ProviderInfo, present: Iterable[str]) -> None:
    missing = sorted(info.required_secrets - set(present))
    if missing:
        raise invalid(("body", "secrets", missing[0]), "required secret is missing")


def expression_or_422(expr: str, loc: Sequence[str | int] = ("body", "condition")) -> Compiled:
    """Compile a CEL condition at create/update time; 422 with the parser's message and
    ``line L, column C``."""
    try:
        return compile_expression(expr)
    except ExpressionError as err:
        raise invalid(loc, str(err), "cel_syntax") from None


def graph_or_422(data: Any, loc: Sequence[str | int] = ("body", "graph")) -> Graph:
    """Validate a run graph; 422 whose location is in the graph and whose message names the
    node (``node 'x': ...``)."""
    try:
        return parse_graph(data)
    except GraphError as err:
        raise invalid((*loc, *err.loc), str(err), "graph") from None


def check_target(target: TargetIn) -> None:
    """Expressions in a target are checked here, once: a workflow target's input mapping,
    and a graph's node types, expressions, edges and acyclicity (the 422 names the node).
    The stored graph is the normalised one the run executes."""
    if target.input is not None:
        expression_or_422(target.input, ("body", "target", "input"))
    if target.kind == "graph":
        graph = graph_or_422(target.graph, loc=("body", "target", "graph"))
        target.graph = graph.model_dump(mode="json")
