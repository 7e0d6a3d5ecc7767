"""The ``triggers`` command's parser: what each subcommand does and which settings it reads
(the environment variables, with their descriptions and defaults from ``Settings``)."""

from __future__ import annotations

import argparse
import textwrap
from importlib.metadata import PackageNotFoundError, version

from pydantic import SecretStr

from triggers.infra.settings import Settings

_DATABASE = ("home", "database_url")
_LOGS = ("log_format",)
_TEMPORAL = ("temporal_address", "temporal_namespace", "temporal_tls", "task_queue")
_API = (
    "api_host",
    "api_port",
    "public_url",
    "temporal_ui_url",
    "secret_keys",
    "webhook_max_body_bytes",
    "webhook_body_timeout_seconds",
    "webhook_rate_limit_per_second",
    "webhook_rate_limit_burst",
    "retry_after_seconds",
    "metrics_per_trigger",
)
_WORKER = (
    "secret_keys",
    "payload_retention_days",
    "worker_max_concurrent_workflow_tasks",
    "worker_workflow_task_pollers",
    "worker_activity_task_pollers",
    "worker_max_concurrent_activities",
    "worker_shutdown_grace_seconds",
    "worker_heartbeat_throttle_seconds",
    "worker_metrics_port",
    "worker_metrics_host",
    "metrics_per_trigger",
)

# Settings fields each command reads, in the order its help lists them.
READS: dict[str, tuple[str, ...]] = {
    "dev": tuple(dict.fromkeys(_DATABASE + _TEMPORAL + _API + _WORKER + _LOGS)),
    "api": _DATABASE + _TEMPORAL + _API + _LOGS,
    "worker": tuple(dict.fromkeys(_DATABASE + _TEMPORAL + _WORKER + _LOGS)),
    "db upgrade": _DATABASE,
    "users create": _DATABASE,
    "users grant-queue": _DATABASE + ("task_queue",),
    "users revoke-queue": _DATABASE + ("task_queue",),
}
# Read by ``dev`` from the environment beside the settings.
UI_PORT_ENV = "TRIGGERS_UI_PORT"

_DESCRIPTIONS = {
    "dev": "Run the whole stack in one process for local use: a Temporal dev server (with "
    "its Web UI, state in <home>/temporal.db), the database migrated, a worker and the "
    "API, and a user 'local' whose API key is printed and kept in <home>/api-key. Without "
    "TRIGGERS_SECRET_KEYS a key is generated in <home>/secret.key. Ctrl-C stops everything.",
    "api": "Run the HTTP API (/api/triggers, /webhooks/..., /docs, /healthz, /readyz, "
    "/metrics) "
    "against an existing database and Temporal cluster. Needs TRIGGERS_SECRET_KEYS.",
    "worker": "Run a worker: trigger workflows, built-in runs, source loops and their "
    "activities on the task queue. Run as many as you like. SIGINT / SIGTERM stop it "
    "within the shutdown grace plus 4 s.",
    "db upgrade": "Apply the database migrations (Alembic) up to the latest schema, then exit.",
    "users create": "Create a user and print a new API key for it (shown only once).",
    "users grant-queue": "As an admin, allow a user's triggers to start workflows on a task "
    "queue (any number of users may be granted one; the service's own queue cannot be).",
    "users revoke-queue": "As an admin, take back a user's grant or claim of a task queue; "
    "refused while an enabled trigger of theirs still targets it.",
}


def package_version() -> str:
    try:
        return version("temporal-triggers")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _default(name: str) -> str:
    default = Settings.model_fields[name].default
    if isinstance(default, SecretStr):
        return "none" if not default.get_secret_value() else "set"
    if default in ("", None):
        return "none"
    return str(default)


def settings_help(command: str) -> str:
    """The epilog of ``command``'s help: each environment variable it reads."""
    lines = ["settings read (environment variables; see also README 'Configuration'):"]
    entries = [
        (f"TRIGGERS_{name.upper()}", f"{Settings.model_fields[name].description or ''}", name)
        for name in READS[command]
    ]
    for env, text, name in entries:
        lines.append(f"  {env}")
        lines += textwrap.wrap(
            f"{text} Default: {_default(name)}.",
            width=90,
            initial_indent="      ",
            subsequent_indent="      ",
        )
    if command == "dev":
        lines += [
            f"  {UI_PORT_ENV}",
            "      Port of the Temporal Web UI. Default: the Temporal port + 1000.",
        ]
    return "\n".join(lines)


def user_name(value: str) -> str:
    """An argparse type: a user name that can be shared with and logged in by name."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a user name must not be empty")
    if value != value.strip():
        raise argparse.ArgumentTypeError("a user name must not start or end with spaces")
    if not value.isprintable():
        raise argparse.ArgumentTypeError("a user name must not contain control characters")
    if len(value) > 100:
        raise argparse.ArgumentTypeError("a user name is at most 100 characters")
    return value


def _sub(
    parent: argparse._SubParsersAction[argparse.ArgumentParser], command: str, name: str, short: str
) -> argparse.ArgumentParser:
    return parent.add_parser(
        name,
        help=short,
        description=textwrap.fill(_DESCRIPTIONS[command], width=90),
        epilog=settings_help(command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triggers", description=doc)
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _sub(sub, "dev", "dev", "the whole stack locally: Temporal dev server, worker, API")
    _sub(sub, "api", "api", "run the HTTP API")
    _sub(sub, "worker", "worker", "run a worker")
    db = sub.add_parser("db", help="database schema", description="Database schema commands.")
    db_sub = db.add_subparsers(dest="db_cmd", required=True, metavar="COMMAND")
    _sub(db_sub, "db upgrade", "upgrade", "apply migrations up to the latest schema")
    users = sub.add_parser("users", help="users and API keys", description="User commands.")
    users_sub = users.add_subparsers(dest="users_cmd", required=True, metavar="COMMAND")
    create = _sub(users_sub, "users create", "create", "create a user and print an API key")
    create.add_argument("name", type=user_name, help="the new user's name (1-100 characters)")
    for command, short in (
        ("users grant-queue", "allow a user's triggers to target a task queue"),
        ("users revoke-queue", "stop allowing a user's triggers to target a task queue"),
    ):
        q = _sub(users_sub, command, command.split()[1], short)
        q.add_argument("name", help="the user's name")
        q.add_argument("queue", help="the task queue")
    return p
