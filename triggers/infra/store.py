"""Data access for users, API keys, triggers and shares. Keyword-only arguments throughout."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.infra.apikeys import hash_api_key, key_prefix, new_api_key
from triggers.infra.models import ApiKey, ShareRole, Trigger, TriggerShare, User, utcnow

ROLE_RANK = {ShareRole.VIEWER.value: 1, ShareRole.EDITOR.value: 2, "owner": 3}


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


async def create_user(session: AsyncSession, *, name: str) -> User:
    user = User(name=name)
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return user


async def get_user_by_name(session: AsyncSession, *, name: str) -> User | None:
    result = await session.exec(select(User).where(User.name == name))
    return result.first()


async def create_api_key(session: AsyncSession, *, user: User, name: str = "default") -> str:
    """Create a key and return it in clear: the only time it is ever seen."""
    key = new_api_key()
    session.add(
        ApiKey(user_id=user.id, key_hash=hash_api_key(key), prefix=key_prefix(key), name=name)
    )
    await session.commit()
    return key


async def user_for_api_key(session: AsyncSession, *, key: str) -> User | None:
    result = await session.exec(
        select(User)
        .join(ApiKey, col(ApiKey.user_id) == col(User.id))
        .where(ApiKey.key_hash == hash_api_key(key))
    )
    return result.first()


async def get_trigger(session: AsyncSession, *, trigger_id: uuid.UUID) -> Trigger | None:
    return await session.get(Trigger, trigger_id)


async def role_for(session: AsyncSession, *, trigger: Trigger, user: User) -> str | None:
    if trigger.user_id == user.id:
        return "owner"
    share = await session.get(TriggerShare, (trigger.id, user.id))
    return share.role if share else None


async def trigger_for_user(
    session: AsyncSession, *, trigger_id: uuid.UUID, user: User, need: str
) -> tuple[Trigger, str]:
    """The trigger and the user's role on it. Not visible to the user: NotFound (so another
    user's triggers are indistinguishable from missing ones); visible but the role is too
    low: Forbidden."""
    trigger = await get_trigger(session, trigger_id=trigger_id)
    if trigger is None:
        raise NotFound(str(trigger_id))
    role = await role_for(session, trigger=trigger, user=user)
    if role is None:
        raise NotFound(str(trigger_id))
    if ROLE_RANK[role] < ROLE_RANK[need]:
        raise Forbidden(f"this action needs the {need} role; you are {role}")
    return trigger, role


async def list_triggers(
    session: AsyncSession,
    *,
    user: User,
    provider: str | None = None,
    enabled: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[tuple[Trigger, str | None]], int]:
    shared = select(TriggerShare.trigger_id).where(TriggerShare.user_id == user.id)
    visible = sa.or_(col(Trigger.user_id) == user.id, col(Trigger.id).in_(shared))
    conditions: list[Any] = [visible]
    if provider is not None:
        conditions.append(col(Trigger.provider) == provider)
    if enabled is not None:
        conditions.append(col(Trigger.enabled) == enabled)
    total = (
        await session.exec(select(sa.func.count()).select_from(Trigger).where(*conditions))
    ).one()
    rows = await session.exec(
        select(Trigger, TriggerShare.role)
        .outerjoin(
            TriggerShare,
            sa.and_(
                col(TriggerShare.trigger_id) == col(Trigger.id),
                col(TriggerShare.user_id) == user.id,
            ),
        )
        .where(*conditions)
        .order_by(col(Trigger.created_at).desc(), col(Trigger.id))
        .limit(limit)
        .offset(offset)
    )
    items = [(t, "owner" if t.user_id == user.id else role) for t, role in rows.all()]
    return items, int(total)


async def save(session: AsyncSession, *, trigger: Trigger) -> Trigger:
    trigger.updated_at = utcnow()
    session.add(trigger)
    await session.commit()
    await session.refresh(trigger)
    return trigger


async def set_share(
    session: AsyncSession, *, trigger: Trigger, user: User, role: ShareRole
) -> TriggerShare:
    share = await session.get(TriggerShare, (trigger.id, user.id))
    if share is None:
        share = TriggerShare(trigger_id=trigger.id, user_id=user.id, role=role.value)
    else:
        share.role = role.value
    session.add(share)
    await session.commit()
    await session.refresh(share)
    return share


async def remove_share(session: AsyncSession, *, trigger: Trigger, user: User) -> bool:
    share = await session.get(TriggerShare, (trigger.id, user.id))
    if share is None:
        return False
    await session.delete(share)
    await session.commit()
    return True


async def list_shares(session: AsyncSession, *, trigger: Trigger) -> list[tuple[str, str]]:
    rows = await session.exec(
        select(User.name, TriggerShare.role)
        .join(TriggerShare, col(TriggerShare.user_id) == col(User.id))
        .where(TriggerShare.trigger_id == trigger.id)
        .order_by(col(User.name))
    )
    return [(name, role) for name, role in rows.all()]
