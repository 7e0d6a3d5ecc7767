"""The ``triggers`` command as a user meets it: ``--version``, help that says what each
subcommand does and which settings it reads, and ``users create`` refusing bad names."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from importlib.metadata import version

import pytest

from triggers.infra.settings import Settings
from workers.cli_help import READS

# Fields no command reads (dead code, removed with issue 9's clean-up).
UNREAD = {"dev_mode", "webhook_timestamp_tolerance_seconds"}


def triggers(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    out = triggers("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"triggers {version('temporal-triggers')}"


@pytest.mark.parametrize("command", sorted(READS))
def test_help_says_what_and_which_settings(command: str) -> None:
    out = triggers(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    about = text.split("\n\n")[1]  # the paragraph after "usage:"
    assert len(about.split()) >= 8, text
    listed = {line.strip() for line in text.splitlines() if line.startswith("  TRIGGERS_")}
    assert listed >= {f"TRIGGERS_{name.upper()}" for name in READS[command]}, text
    for name in READS[command]:
        assert Settings.model_fields[name].description, name


def test_every_setting_is_named_by_some_command() -> None:
    named = {name for names in READS.values() for name in names}
    assert named == set(Settings.model_fields) - UNREAD
    assert "TRIGGERS_SECRET_KEYS" in triggers("api", "--help").stdout
    assert "TRIGGERS_WORKER_SHUTDOWN_GRACE_SECONDS" in triggers("worker", "--help").stdout
    assert "TRIGGERS_UI_PORT" in triggers("dev", "--help").stdout


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (" alice", "must not start or end with spaces"),
        ("al\tice", "control characters"),
        ("x" * 101, "at most 100 characters"),
    ],
)
def test_users_create_refuses_a_bad_name(name: str, reason: str, sqlite_url: str) -> None:
    out = triggers("users", "create", name, env={"TRIGGERS_DATABASE_URL": sqlite_url})
    assert out.returncode != 0
    assert reason in out.stderr and "Traceback" not in out.stderr, out.stderr
    with sqlite3.connect(sqlite_url.split("///", 1)[1]) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_users_create_makes_a_user_once(sqlite_url: str) -> None:
    env = {"TRIGGERS_DATABASE_URL": sqlite_url}
    out = triggers("users", "create", "dana", env=env)
    assert out.returncode == 0, out.stderr
    assert "user dana created; API key (shown once): tt_" in out.stdout
    again = triggers("users", "create", "dana", env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
