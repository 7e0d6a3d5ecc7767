"""``triggers worker`` and ``triggers api`` refuse to start without usable encryption keys,
at once and saying what to set, instead of running and failing later."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers.devserver import DevServer
from workers.ports import free_port

CASES = [
    pytest.param("", "TRIGGERS_SECRET_KEYS is not set: give one or more Fernet keys", id="unset"),
    pytest.param(
        "not-a-fernet-key-but-a-secret",
        "TRIGGERS_SECRET_KEYS holds a key that is not a Fernet key",
        id="invalid",
    ),
]


@pytest.mark.parametrize("command", ["worker", "api"])
@pytest.mark.parametrize(("keys", "message"), CASES)
async def test_refuses_to_start_without_usable_secret_keys(
    temporal: DevServer, command: str, keys: str, message: str
) -> None:
    # A reachable Temporal: without the check, the worker starts and runs.
    env = {
        **os.environ,
        "TRIGGERS_TEMPORAL_ADDRESS": temporal.address,
        "TRIGGERS_SECRET_KEYS": keys,
        "TRIGGERS_TASK_QUEUE": "never-polled",
        "TRIGGERS_API_PORT": str(free_port()),
        "TRIGGERS_DATABASE_URL": "sqlite+aiosqlite:///:memory:",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"`triggers {command}` started without usable keys") from exc
    assert done.returncode == 1, done.stderr[-2000:]
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    if keys:
        assert keys not in done.stdout + done.stderr  # a key is never printed
