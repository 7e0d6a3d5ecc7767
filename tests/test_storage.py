"""Storage on SQLite and PostgreSQL: migrations match the models; rows, keys and secrets."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import Connection
from sqlmodel import SQLModel, select

from tests.conftest import _drop_pg, _pg_database
from triggers.infra import store
from triggers.infra.crypto import SecretBox, SecretKeyError
from triggers.infra.db import make_engine, session_factory, upgrade
from triggers.infra.models import ApiKey, ShareRole, Trigger, TriggerShare


async def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)

    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            version = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert version.scalar_one() == "0008"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_0004_keeps_existing_triggers_on_their_owners_allowlist(
    kind: str, tmp_path: Path
) -> None:
    """Rows from before 0004 (and 0006) get their owner as network and target principal:
    nothing changes for them."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else await _pg_database()
    try:
        await asyncio.to_thread(upgrade, url, "0003")
        engine = make_engine(url)
        uid, tid = uuid.uuid4(), uuid.uuid4()
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO users (id, name, network_allowlist, created_at) "
                        "VALUES (:id, 'old', '[]', CURRENT_TIMESTAMP)"
                    ),
                    {"id": uid if kind == "postgresql" else uid.hex},
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO triggers (id, user_id, name, provider, config, target, "
                        "enabled, config_version, status, created_at, updated_at) VALUES "
                        "(:id, :uid, 't', 'cron', '{}', '{}', false, 1, 'disabled', "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "id": tid if kind == "postgresql" else tid.hex,
                        "uid": uid if kind == "postgresql" else uid.hex,
                    },
                )
            await asyncio.to_thread(upgrade, url)
            async with session_factory(engine)() as session:
                row = await session.get(Trigger, tid)
                assert row is not None and row.network_principal_id == uid
                # 0006: and their graph's requests go through their owner's allowlist too.
                assert row.target_principal_id == uid
        finally:
            await engine.dispose()
    finally:
        if kind == "postgresql":
            await _drop_pg(url)


async def test_users_keys_triggers_and_shares(db_url: str) -> None:
    engine = make_engine(db_url)
    box = SecretBox([SecretBox.generate_key()])
    try:
        async with session_factory(engine)() as session:
            alice = await store.create_user(session, name="alice")
            bob = await store.create_user(session, name="bob")
            key = await store.create_api_key(session, user=alice)
            assert key.startswith("tt_")
            found = await store.user_for_api_key(session, key=key)
            assert found is not None and found.id == alice.id
            assert await store.user_for_api_key(session, key=key + "x") is None
            # Only the hash is stored.
            raw = await session.exec(select(ApiKey))
            assert all(key not in str(row.model_dump()) for row in raw.all())

            trigger = Trigger(
                user_id=alice.id,
                name="t",
                provider="webhook",
                config={"preset": "github", "nested": {"a": [1, 2]}},
                target={"kind": "run"},
                secrets_encrypted=box.encrypt({"signing_secret": "s3cret"}),
            )
            trigger = await store.save(session, trigger=trigger)
            assert "s3cret" not in (trigger.secrets_encrypted or "")
            got, role = await store.trigger_for_user(
                session, trigger_id=trigger.id, user=alice, need="owner"
            )
            assert role == "owner" and got.config["nested"] == {"a": [1, 2]}
            with pytest.raises(store.NotFound):
                await store.trigger_for_user(
                    session, trigger_id=trigger.id, user=bob, need="viewer"
                )
            await store.set_share(session, trigger=trigger, user=bob, role=ShareRole.VIEWER)
            _, role = await store.trigger_for_user(
                session, trigger_id=trigger.id, user=bob, need="viewer"
            )
            assert role == "viewer"
            with pytest.raises(store.Forbidden):
                await store.trigger_for_user(
                    session, trigger_id=trigger.id, user=bob, need="editor"
                )
            items, total = await store.list_triggers(session, user=bob)
            assert total == 1 and items[0][1] == "viewer"
            assert box.decrypt(trigger.secrets_encrypted) == {"signing_secret": "s3cret"}

            # Deleting a trigger removes its shares (foreign keys cascade on both databases).
            await session.delete(trigger)
            await session.commit()
            assert await session.get(TriggerShare, (trigger.id, bob.id)) is None
    finally:
        await engine.dispose()


async def test_users_names_are_unique(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            await store.create_user(session, name="same")
        async with session_factory(engine)() as session:
            with pytest.raises(Exception, match="(?i)unique|duplicate"):
                await store.create_user(session, name="same")
    finally:
        await engine.dispose()


def test_secret_rotation_with_multifernet() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt({"signing_secret": "v"})
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == {"signing_secret": "v"}
    fresh = rotated_box.rotate(token)
    assert SecretBox([new]).decrypt(fresh) == {"signing_secret": "v"}
    with pytest.raises(SecretKeyError) as info:
        SecretBox([new]).decrypt(token)
    assert token not in str(info.value)
    with pytest.raises(SecretKeyError):
        SecretBox([])
    with pytest.raises(SecretKeyError):
        SecretBox(["not-a-key"])


async def test_concurrent_sessions_on_one_database(db_url: str) -> None:
    """The API and the CLI write at the same time; SQLite runs in WAL mode for that."""
    engine = make_engine(db_url)
    try:

        async def make(i: int) -> None:
            async with session_factory(engine)() as session:
                await store.create_user(session, name=f"user-{i}")

        await asyncio.gather(*(make(i) for i in range(20)))
        async with session_factory(engine)() as session:
            for i in range(20):
                assert await store.get_user_by_name(session, name=f"user-{i}") is not None
    finally:
        await engine.dispose()
