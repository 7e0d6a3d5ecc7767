"""The ``triggers`` command: dev | api | worker | db upgrade | users create | grant-queue |
revoke-queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import uvicorn
from pydantic import SecretStr

from triggers.infra.crypto import SecretBox, SecretKeyError
from triggers.infra.settings import Settings, get_settings
from workers.cli_help import parser

if TYPE_CHECKING:
    from temporalio.worker import Worker

    from workers.devserver import DevServer

log = logging.getLogger("triggers")
# How long `triggers dev` lets its worker stop once the Temporal server has died.
DEAD_SERVER_SHUTDOWN_SECONDS = 2.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the command decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app: object, settings: Settings) -> _Server:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        lifespan="on",
        # No handlers of uvicorn's own: its records reach the one root handler, which
        # carries the redaction filter (``setup_logging``).
        log_config=None,
        # h11, not httptools when that happens to be installed: the parser whose limits on
        # malformed and oversized requests tests/test_webhook_hostile.py checks.
        http="h11",
    )
    return _Server(config)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _until(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    """Wait for a stop signal or for any task to end (an error ends the command)."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper:
            task.result()  # re-raises what ended it
            raise RuntimeError("a component stopped unexpectedly")


class TemporalDied(Exception):
    """The dev stack's Temporal server exited while the stack was running."""


async def _watch_server(server: DevServer) -> None:
    """Return never while the server runs; raise :class:`TemporalDied` when it exits."""
    code = await server.wait_exited()
    how = f"exited with code {code}"
    if code < 0:
        with contextlib.suppress(ValueError):
            how = f"was killed by {signal.Signals(-code).name}"
    raise TemporalDied(
        f"the Temporal dev server (at {server.address}) {how} while "
        "`triggers dev` was running; the worker and the API are stopped with it (webhooks "
        "would only wait for a 503). Start `triggers dev` again." + server.log_tail()
    )


def _dev_secret_key(settings: Settings) -> Settings:
    if settings.secret_keys.get_secret_value():
        return settings
    path = settings.home / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SecretBox.generate_key())
        path.chmod(0o600)
    return settings.model_copy(update={"secret_keys": SecretStr(path.read_text().strip())})


async def _ensure_local_user(settings: Settings) -> str:
    """The dev stack's user ``local`` and its API key (kept in <home>/api-key, mode 600)."""
    from triggers.infra import store
    from triggers.infra.db import make_engine, session_factory

    key_file = settings.home / "api-key"
    engine = make_engine(settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            user = await store.get_user_by_name(session, name="local")
            if key_file.exists() and user is not None:
                key = key_file.read_text().strip()
                if await store.user_for_api_key(session, key=key) is not None:
                    return key
            if user is None:
                user = await store.create_user(session, name="local")
            key = await store.create_api_key(session, user=user, name="dev")
    finally:
        await engine.dispose()
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


async def _dev(settings: Settings) -> None:
    from api.app import create_app
    from triggers.infra.db import upgrade
    from triggers.infra.metrics import Metrics, Telemetry, serve
    from triggers.infra.temporal import connect
    from workers.devserver import DevServer
    from workers.main import build_worker
    from workers.sweeper import payload_sweeper

    settings = _dev_secret_key(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    stop = _stop_event()
    exit_code = 0
    host, _, port = settings.temporal_address.rpartition(":")
    server = DevServer(
        ip=host or "127.0.0.1",
        port=int(port),
        ui_port=int(os.environ.get("TRIGGERS_UI_PORT", int(port) + 1000)),
        db_filename=settings.home / "temporal.db",
        namespace=settings.temporal_namespace,
        log_file=settings.home / "temporal.log",
    )
    print(f"Starting Temporal dev server on {server.address} ...", flush=True)
    await server.start()
    if not settings.temporal_ui_url and server.ui_url:
        # The builder page links runs into this server's Web UI.
        settings = settings.model_copy(update={"temporal_ui_url": server.ui_url})
    try:
        await asyncio.to_thread(upgrade, settings.resolved_database_url)
        key = await _ensure_local_user(settings)
        # One process, one registry: the API's /metrics shows the worker's too.
        metrics = Metrics(per_trigger=settings.metrics_per_trigger)
        telemetry = Telemetry(metrics)
        client = await connect(settings, runtime=telemetry.runtime)
        worker = build_worker(client, settings, metrics=metrics)
        api = _uvicorn(create_app(settings, client=client, metrics=metrics), settings)
        async with (
            payload_sweeper(settings),
            telemetry.draining(),
            serve.worker_port(metrics, settings) as worker_metrics,
        ):
            worker_task = asyncio.create_task(worker.run())
            api_task = asyncio.create_task(api.serve())
            # The server is our child: its exit is noticed at once, not at the next call.
            server_task = asyncio.create_task(_watch_server(server))
            while not api.started and not api_task.done():
                await asyncio.sleep(0.05)
            # One process: the worker's port (when set) serves the same registry.
            port_line = f"                {worker_metrics}  (the same)\n" if worker_metrics else ""
            print(
                "\n temporal-triggers is running\n"
                f"   Builder      {settings.base_url}/  (sign in with the API key below)\n"
                f"   API          {settings.base_url}  (docs: {settings.base_url}/docs)\n"
                f"   Temporal UI  {server.ui_url}\n"
                f"   Temporal     {server.address}  namespace {settings.temporal_namespace}\n"
                f"   Database     {settings.resolved_database_url}\n"
                f"   API key      {key}   (user 'local'; also in {settings.home / 'api-key'})\n"
                f"   Metrics      {settings.base_url}/metrics  (API and worker)\n"
                f"{port_line}"
                "\n Ctrl-C stops everything.\n",
                flush=True,
            )
            try:
                await _until(stop, worker_task, api_task, server_task)
            except TemporalDied as died:
                print(f"error: {died}", file=sys.stderr, flush=True)
                exit_code = 1
            finally:
                server_task.cancel()
                api.should_exit = True
                with contextlib.suppress(Exception):
                    await api_task
                if exit_code:
                    # Nothing to hand back to a server that is gone, and the SDK's worker
                    # retries its calls to it for a while (~10 s measured) before it stops.
                    try:
                        await asyncio.wait_for(worker.shutdown(), DEAD_SERVER_SHUTDOWN_SECONDS)
                    except TimeoutError:
                        worker_task.cancel()
                else:
                    await _stop_worker(worker, worker_task, settings)
    finally:
        await server.stop()
        print("stopped", flush=True)
    if exit_code:
        raise SystemExit(exit_code)


def _require_secret_keys(settings: Settings) -> None:
    """Exit at once, with what to do, without usable encryption keys: the API encrypts
    trigger secrets with them and the worker decrypts them for its providers (without keys
    every provider that needs a secret would fail later, saying it "is not set")."""
    keys = settings.secret_keys.get_secret_value()
    if not keys:
        raise SystemExit(
            "TRIGGERS_SECRET_KEYS is not set: give one or more Fernet keys, newest first, "
            "the same to the API and every worker (`triggers dev` makes one for local use)"
        )
    try:
        SecretBox.from_setting(keys)
    except SecretKeyError as exc:  # its message never includes the keys
        raise SystemExit(f"{exc}: each key is 32 url-safe base64-encoded bytes") from None


async def _api(settings: Settings) -> None:
    from api.app import create_app
    from triggers.infra.metrics import Metrics, Telemetry

    _require_secret_keys(settings)
    if settings.listens_everywhere and not settings.public_url:
        log.warning(
            "TRIGGERS_PUBLIC_URL is not set: webhook URLs read %s/webhooks/...; set it to the "
            "base URL senders reach this API at",
            settings.base_url,
        )
    # The API's own Temporal client reports its SDK metrics (requests, their latency) too.
    metrics = Metrics(per_trigger=settings.metrics_per_trigger)
    telemetry = Telemetry(metrics)
    app = create_app(settings, metrics=metrics, runtime=telemetry.runtime)
    api = _uvicorn(app, settings)
    stop = _stop_event()
    async with telemetry.draining():
        task = asyncio.create_task(api.serve())
        try:
            await _until(stop, task)
        finally:
            api.should_exit = True
            await task


# What a stop may take beyond the activities' grace: in-flight workflow tasks, the last
# completions sent to Temporal, closing the database. Grace 5 s + 4 s stays under the
# 10 s that ``docker stop`` waits before it kills.
_STOP_MARGIN_SECONDS = 4.0


async def _stop_worker(worker: Worker, task: asyncio.Task[None], settings: Settings) -> None:
    """Shut the worker down within its grace period plus a margin, however busy it is; past
    that the command gives up waiting and exits non-zero."""
    bound = settings.worker_shutdown_grace_seconds + _STOP_MARGIN_SECONDS
    log.info("stopping the worker (at most %.0f s)", bound)
    try:
        await asyncio.wait_for(worker.shutdown(), bound)
    except TimeoutError:
        task.cancel()
        raise SystemExit(f"the worker did not stop within {bound:.0f} s; exiting anyway") from None
    with contextlib.suppress(Exception):  # a fatal worker error was raised by _until already
        await task
    log.info("worker stopped")


async def _worker(settings: Settings) -> None:
    from triggers.infra.metrics import Metrics, Telemetry, serve
    from triggers.infra.temporal import connect
    from workers.main import build_worker
    from workers.sweeper import payload_sweeper

    _require_secret_keys(settings)
    metrics = Metrics(per_trigger=settings.metrics_per_trigger)
    telemetry = Telemetry(metrics)
    client = await connect(settings, runtime=telemetry.runtime)
    worker = build_worker(client, settings, metrics=metrics)
    stop = _stop_event()
    async with (
        payload_sweeper(settings),
        telemetry.draining(),
        serve.worker_port(metrics, settings),
    ):
        task = asyncio.create_task(worker.run())
        log.info(
            "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
        )
        try:
            await _until(stop, task)
        finally:
            await _stop_worker(worker, task, settings)


async def _users_create(settings: Settings, name: str) -> None:
    from triggers.infra import store
    from triggers.infra.db import make_engine, session_factory

    engine = make_engine(settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            if await store.get_user_by_name(session, name=name) is not None:
                raise SystemExit(f"user {name!r} already exists")
            user = await store.create_user(session, name=name)
            key = await store.create_api_key(session, user=user)
    finally:
        await engine.dispose()
    print(f"user {name} created; API key (shown once): {key}")


async def _users_queue(settings: Settings, name: str, queue: str, *, grant: bool) -> None:
    """The admin's path to task queues: allow a user to target one, or take it back."""
    from triggers.infra import queues, store
    from triggers.infra.db import make_engine, session_factory

    if queue == settings.task_queue:
        raise SystemExit(f"{queue!r} is the service's own task queue: it runs built-in runs only")
    engine = make_engine(settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            user = await store.get_user_by_name(session, name=name)
            if user is None:
                raise SystemExit(f"user {name!r} not found")
            if grant:
                others = await queues.holders(session, queue=queue) - {user.id}
                added = await queues.grant(session, user_id=user.id, queue=queue)
                note = f" (also held by {len(others)} other user(s))" if others else ""
                print(f"{name} may target task queue {queue}{note}" if added else "unchanged")
                return
            try:
                found = await queues.revoke(session, user_id=user.id, queue=queue)
            except queues.QueueConflict as exc:
                hint = "disable them or change their target first"
                raise SystemExit(f"{exc.message}; {hint}") from None
            print(f"{name} may no longer target {queue}" if found else f"{name} did not hold it")
    finally:
        await engine.dispose()


def setup_logging(settings: Settings) -> None:
    """One handler on the root logger, with the redaction filter, in the configured format
    (``triggers/infra/logs.py``)."""
    from triggers.infra import logs

    logs.setup(settings.log_format)


# The service name each command's spans carry (unless OTEL_SERVICE_NAME says otherwise).
_SERVICE_NAMES = {
    "dev": "temporal-triggers",
    "api": "temporal-triggers-api",
    "worker": "temporal-triggers-worker",
}


def setup_tracing(command: str) -> None:
    """Tracing from the standard OTEL_* variables, before any Temporal client is made (the
    client's plugins depend on it); off when they do not ask for it."""
    from triggers.infra import tracing

    if command in _SERVICE_NAMES:
        try:
            tracing.configure(_SERVICE_NAMES[command])
        except tracing.TracingConfigError as exc:
            raise SystemExit(f"tracing: {exc}") from None


def main(argv: Sequence[str] | None = None) -> None:
    args = parser(__doc__).parse_args(argv)
    settings = get_settings()
    setup_logging(settings)
    setup_tracing(args.command)
    if args.command == "dev":
        asyncio.run(_dev(settings))
    elif args.command == "api":
        asyncio.run(_api(settings))
    elif args.command == "worker":
        asyncio.run(_worker(settings))
    elif args.command == "db":
        from triggers.infra.db import upgrade

        upgrade(settings.resolved_database_url)
        print("database is at the latest schema")
    elif args.command == "users" and args.users_cmd == "create":
        asyncio.run(_users_create(settings, args.name))
    elif args.command == "users":
        grant = args.users_cmd == "grant-queue"
        asyncio.run(_users_queue(settings, args.name, args.queue, grant=grant))


if __name__ == "__main__":
    main(sys.argv[1:])
