"""``/api/providers``: the installed providers, each with its config JSON Schema, the
secrets it takes and what it can do, so a client (the builder page) builds its forms from
them and a plugin provider needs no client code."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from api.body_schemas import secrets_schema
from api.deps import CurrentUser
from api.errors import answers
from api.text import SafeStr
from triggers.providers import ProviderInfo, find_provider, provider_names

router = APIRouter(prefix="/api/providers", tags=["providers"])


class ProviderSecrets(BaseModel):
    required: list[str] = Field(description="Secrets a trigger of this provider must have.")
    optional: list[str]
    pattern: str | None = Field(
        default=None, description="Other secret names allowed (a regular expression)."
    )
    pattern_help: str | None = None


class ProviderCapabilities(BaseModel):
    receives_webhooks: bool = Field(
        description="Events arrive over HTTP at /webhooks/{preset}/{trigger id}."
    )
    runs_source: bool = Field(description="The trigger workflow runs a source loop.")
    overlap_field: str | None = Field(
        default=None, description="The config field that holds the overlap policy."
    )


class ProviderSummary(BaseModel):
    name: str
    description: str
    secrets: ProviderSecrets
    capabilities: ProviderCapabilities


class ProviderDetail(ProviderSummary):
    config_schema: dict[str, Any] = Field(description="The config's JSON Schema.")
    secrets_schema: dict[str, Any] = Field(description="The secrets' JSON Schema (write-only).")


class ProviderList(BaseModel):
    items: list[ProviderSummary]


def _summary(info: ProviderInfo) -> dict[str, Any]:
    doc = (info.config_model.__doc__ or "").strip()
    return {
        "name": info.name,
        "description": doc.split("\n\n", 1)[0].replace("\n", " "),
        "secrets": ProviderSecrets(
            required=sorted(info.required_secrets),
            optional=sorted(info.optional_secrets),
            pattern=info.secret_pattern,
            pattern_help=info.secret_pattern_help,
        ),
        "capabilities": ProviderCapabilities(
            receives_webhooks=info.receives_webhooks,
            runs_source=info.runs_source,
            overlap_field=info.overlap_field,
        ),
    }


def provider_detail(info: ProviderInfo) -> ProviderDetail:
    return ProviderDetail(
        **_summary(info),
        config_schema=info.config_model.model_json_schema(),
        secrets_schema=secrets_schema(info),
    )


@router.get("", response_model=ProviderList, responses=answers(401, 503))
async def list_providers(user: CurrentUser) -> ProviderList:
    """The installed providers (built-in and plugins), by name."""
    return ProviderList(
        items=[
            ProviderSummary(**_summary(info))
            for info in (find_provider(n) for n in provider_names())
            if info is not None
        ]
    )


@router.get("/{name}", response_model=ProviderDetail, responses=answers(401, 404, 422, 503))
async def get_provider_detail(
    name: Annotated[SafeStr, Path(max_length=64)], user: CurrentUser
) -> ProviderDetail:
    """One provider: its config JSON Schema, its secrets (write-only) and capabilities."""
    info = find_provider(name)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "provider not found")
    return provider_detail(info)
