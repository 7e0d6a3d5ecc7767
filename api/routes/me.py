"""``/api/me``: the calling user, and what their triggers may reach on the network."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, SessionDep
from api.errors import answers
from api.text import NON_BLANK_PATTERN, SafeStr
from api.validation import invalid
from triggers import net
from triggers.models import User
from triggers.providers.base import ProviderConfigError

router = APIRouter(prefix="/api/me", tags=["me"])


class MePublic(BaseModel):
    id: uuid.UUID
    name: str
    network_allowlist: list[str]


class AllowlistIn(BaseModel):
    """Outbound requests of your triggers (polling, SQL) to loopback, private and link-local
    addresses are refused unless allowed here: IPs (``127.0.0.1``), CIDRs (``10.0.0.0/8``),
    host names, or ``file:/absolute/folder`` for SQLite files."""

    model_config = ConfigDict(extra="forbid")

    entries: list[
        Annotated[SafeStr, Field(max_length=1000, json_schema_extra={"pattern": NON_BLANK_PATTERN})]
    ] = Field(max_length=100)


def _public(user: User) -> MePublic:
    return MePublic(id=user.id, name=user.name, network_allowlist=list(user.network_allowlist))


@router.get("", response_model=MePublic, responses=answers(401, 503))
async def me(user: CurrentUser) -> MePublic:
    """Who the API key belongs to."""
    return _public(user)


@router.put("/network-allowlist", response_model=MePublic, responses=answers(400, 401, 422, 503))
async def set_network_allowlist(
    body: AllowlistIn, user: CurrentUser, session: SessionDep
) -> MePublic:
    """Replace the list of private addresses, hosts and folders your triggers may reach.
    Running sources pick it up when they next start."""
    for i, entry in enumerate(body.entries):
        try:
            net.Allowlist.parse([entry])
        except ProviderConfigError as exc:
            raise invalid(("body", "entries", i), str(exc)) from None
    user.network_allowlist = [e.strip() for e in body.entries]
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return _public(user)
