"""The JSON schemas the OpenAPI publishes for bodies whose rules depend on a value in them.

A trigger's ``config`` and ``secrets`` are checked by its provider's pydantic ``Config`` and
secret names, looked up in the registry (``triggers.providers``) when a request arrives, so
that a plugin installed by entry point works like a built-in one. The schema says the same
thing: the create body is a union with one member per provider, discriminated by
``provider``, each member using that provider's ``Config`` model (published under its own
name). The members are built from the registry each time the OpenAPI is generated.

Likewise the dry run's body (``events`` or ``last``) and a target (by ``kind``) are
published as the union of their forms. The runtime models (``TriggerCreate``, ``DryRunIn``,
``TargetIn``) keep validating, with the same field definitions, so their 422s keep naming
fields as ``["body", "config", "preset"]``.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema
from pydantic_core import CoreSchema

from api.text import NON_BLANK_PATTERN
from triggers.providers import ProviderInfo, get_provider, provider_names

_SECRET_VALUE = {"type": "string", "pattern": NON_BLANK_PATTERN}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part)


def secrets_schema(info: ProviderInfo) -> dict[str, Any]:
    """The secrets a provider takes: its named ones (required ones required) and, for
    providers with user-named secrets, names matching its pattern."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": "Write-only: stored encrypted, never returned.",
        "properties": {name: dict(_SECRET_VALUE) for name in sorted(info.allowed_secrets)},
        "additionalProperties": False,
    }
    if info.secret_pattern:
        schema["patternProperties"] = {f"^(?:{info.secret_pattern})$": dict(_SECRET_VALUE)}
    if info.required_secrets:
        schema["required"] = sorted(info.required_secrets)
    return schema


def _literal(value: str) -> Any:
    return Literal[value]


def _union(*types: Any) -> Any:
    """``A | B | ...`` of types known only at run time."""
    return functools.reduce(operator.or_, types)


def _takes_empty(model: type[BaseModel]) -> bool:
    """Whether ``{}`` is a valid config (then a create body may leave ``config`` out)."""
    try:
        model.model_validate({})
    except ValueError:  # pydantic's ValidationError
        return False
    return True


def _field(model: type[BaseModel], name: str) -> Any:
    """A runtime model's field definition, to reuse in a published member unchanged."""
    info: FieldInfo = model.model_fields[name]
    return Annotated[info.annotation, info]


@functools.lru_cache(maxsize=64)
def _create_member(
    base: type[BaseModel], info: ProviderInfo, extra_fields: tuple[str, ...]
) -> type[BaseModel]:
    config: Any = (
        (info.config_model, Field(default=None))
        if _takes_empty(info.config_model)
        else (info.config_model, ...)
    )
    return create_model(
        f"{_camel(info.name)}TriggerCreate",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"A `{info.name}` trigger.",
        provider=(_literal(info.name), ...),
        config=config,
        secrets=(
            Annotated[dict[str, str], WithJsonSchema(secrets_schema(info))],
            ... if info.required_secrets else Field(default=None),
        ),
        **{name: _field(base, name) for name in extra_fields},
    )


def create_members(base: type[BaseModel]) -> list[type[BaseModel]]:
    """One create body per registered provider; ``base`` gives the other fields."""
    shared = tuple(n for n in base.model_fields if n not in ("provider", "config", "secrets"))
    return [_create_member(base, get_provider(n), shared) for n in provider_names()]


def _publish(handler: GetJsonSchemaHandler, annotation: Any) -> JsonSchemaValue:
    return handler(TypeAdapter(annotation).core_schema)


class ProviderUnion:
    """Publishes a create body as the union of the registered providers' bodies."""

    @staticmethod
    def schema(base: type[BaseModel], handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        union = _union(*create_members(base))
        return _publish(handler, Annotated[union, Field(discriminator="provider")])


class AnyProviderConfig:
    """Publishes a PATCH ``config`` as one of the providers' configs (the trigger's own
    provider decides which: a config of another provider is a 422)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        configs = tuple(get_provider(n).config_model for n in provider_names())
        schema = _publish(handler, _union(*configs, None))
        schema["description"] = (
            "Replaces the whole config; must be valid for the trigger's provider."
        )
        return schema


def one_of(handler: GetJsonSchemaHandler, *members: type[BaseModel]) -> JsonSchemaValue:
    """A body published as exactly one of ``members``."""
    schema = _publish(handler, _union(*members))
    if "anyOf" in schema:
        schema["oneOf"] = schema.pop("anyOf")
    return schema
