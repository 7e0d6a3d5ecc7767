"""Manage a ``temporal server start-dev`` child process.

Used by the ``triggers dev`` command (the embedded stack) and by the pytest session fixture.
The server runs in its own process group so that :meth:`DevServer.stop` can take down
everything it spawned, and on Linux it is additionally asked to die with its parent
(``PR_SET_PDEATHSIG``) so that a killed test run or CLI leaves no orphan behind.

Example:
    >>> async with DevServer(headless=True) as server:  # doctest: +SKIP
    ...     client = await Client.connect(server.address)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import IO

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from triggers.contracts.names import SEARCH_ATTRIBUTES
from workers.ports import free_port, port_in_use
from workers.processes import parent_death_hook, signal_group, temporal_binary

__all__ = ["DevServer"]

_POLL_INTERVAL = 0.1
_RPC_TIMEOUT = 5.0
_LOG_TAIL_BYTES = 4000
_LOG_TAIL_LINES = 30
# Starts tried when a port was taken after all (see workers/ports.py).
_START_ATTEMPTS = 3
_IN_USE = "address already in use"
log = logging.getLogger("triggers.devserver")


def _connect_host(ip: str) -> str:
    """Return the host clients should dial for a server bound to ``ip``."""
    if ip in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    if ":" in ip and not ip.startswith("["):
        return f"[{ip}]"
    return ip


class DevServer:
    """A ``temporal server start-dev`` child process.

    Args:
        port: Frontend gRPC port; a free port is picked when ``None``.
        ui_port: Web UI port; a free port is picked when ``None`` (ignored when headless).
        headless: Disable the Web UI.
        db_filename: SQLite file for persistent state; in-memory when ``None``. Its parent
            directory is created if needed.
        ip: Address the frontend (and the UI) bind to.
        namespace: Namespace created at launch and used for the health check.
        dynamic_config: Dynamic config overrides; values are JSON encoded.
        log_file: File that receives the server's stdout/stderr (appended to); output is
            discarded when ``None``.
        search_attributes: Custom search attributes to register at start (name to type);
            :data:`SEARCH_ATTRIBUTES` by default. Tests pass ``{}`` for a namespace without.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        db_filename: Path | None = None,
        ip: str = "127.0.0.1",
        namespace: str = "default",
        dynamic_config: Mapping[str, object] | None = None,
        log_file: Path | None = None,
        search_attributes: Mapping[str, str] | None = None,
    ) -> None:
        # Picked outside the ephemeral range, and again when a start finds one taken.
        self._pick_port = port is None
        self._pick_ui_port = ui_port is None and not headless
        self._port = port if port is not None else free_port()
        self._ui_port: int | None = None
        if not headless:
            self._ui_port = ui_port if ui_port is not None else free_port()
        self._db_filename = db_filename
        self._ip = ip
        self._namespace = namespace
        self._dynamic_config: dict[str, object] = dict(dynamic_config or {})
        self._log_file = log_file
        self._log_offset = 0
        self._process: asyncio.subprocess.Process | None = None
        self._search_attributes = dict(
            SEARCH_ATTRIBUTES if search_attributes is None else search_attributes
        )

    @property
    def address(self) -> str:
        """The ``host:port`` of the frontend gRPC service, e.g. ``127.0.0.1:7233``."""
        return f"{_connect_host(self._ip)}:{self._port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI base URL, or ``None`` when headless."""
        if self._ui_port is None:
            return None
        return f"http://{_connect_host(self._ip)}:{self._ui_port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it is started, else ``None``."""
        return self._process.pid if self._process is not None else None

    def _command(self) -> list[str]:
        """Build the ``temporal server start-dev`` argument vector."""
        cmd = [temporal_binary(), "server", "start-dev", "--ip", self._ip]
        cmd += ["--port", str(self._port)]
        if self._ui_port is None:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self._ui_port), "--ui-disable-news-fetch"]
        if self._db_filename is not None:
            cmd += ["--db-filename", str(self._db_filename)]
        cmd += ["--namespace", self._namespace, "--log-level", "warn"]
        for name, kind in self._search_attributes.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        for key, value in self._dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        return cmd

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and wait until it is healthy.

        Healthy means a client can connect to :attr:`address` in the configured namespace
        and every search attribute it was asked to register is registered. A server that
        exits at once on an address in use starts again (3 starts in all; fresh ports where
        we picked them): its own internal ports can collide however ours are chosen. A port
        given explicitly that is taken is not retried.

        Args:
            timeout: Seconds to wait for the server to become healthy, per start.

        Raises:
            RuntimeError: If already started, if the process exits early, or if it is not
                healthy in time. The process is stopped first; the error includes the tail
                of the log file when there is one.
        """
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await self._start_once(timeout)
                return
            except _ExitedEarly as exc:
                if attempt == _START_ATTEMPTS or not self._may_retry(exc):
                    raise
                log.warning(
                    "temporal dev server on port %d exited at start (%s); starting again",
                    self._port,
                    "an address was in use" if exc.in_use else "unknown cause",
                )
                if self._pick_port:
                    self._port = free_port()
                if self._pick_ui_port:
                    self._ui_port = free_port()

    def _may_retry(self, exc: _ExitedEarly) -> bool:
        """A taken port given explicitly fails again; an unexplained exit (no log to tell)
        is retried only on ports we picked."""
        if not exc.in_use:
            return self._log_file is None and self._pick_port
        explicit = [] if self._pick_port else [self._port]
        if self._ui_port is not None and not self._pick_ui_port:
            explicit.append(self._ui_port)
        return not any(port_in_use(self._ip, port) for port in explicit)

    async def _start_once(self, timeout: float) -> None:
        if self._process is not None and self._process.returncode is None:
            raise RuntimeError(f"dev server already running (pid {self._process.pid})")
        cmd = self._command()
        if self._db_filename is not None:
            self._db_filename.parent.mkdir(parents=True, exist_ok=True)
        output: IO[bytes] | int = subprocess.DEVNULL
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            output = self._log_file.open("ab")
            self._log_offset = output.tell()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=parent_death_hook(),
            )
        finally:
            if not isinstance(output, int):
                output.close()
        try:
            await self._wait_healthy(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_healthy(self, timeout: float) -> None:
        """Poll the server until it is healthy; see :meth:`start`.

        Every probe is raced against the process exiting, so a server that dies (e.g. port
        already taken) is reported at once rather than after a hung connection attempt.
        """
        process = self._process
        assert process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        exited = asyncio.ensure_future(process.wait())
        probe: asyncio.Future[tuple[Client, list[str]]] | None = None
        client: Client | None = None
        last_error = "no attempt completed"
        try:
            while True:
                remaining = deadline - loop.time()
                if not exited.done() and remaining > 0:
                    probe = asyncio.ensure_future(
                        asyncio.wait_for(self._probe(client), min(remaining, _RPC_TIMEOUT))
                    )
                    await asyncio.wait({probe, exited}, return_when=asyncio.FIRST_COMPLETED)
                    if not probe.done():
                        probe.cancel()
                        await asyncio.wait({probe})
                    elif probe.exception() is not None:
                        exc = probe.exception()
                        last_error = f"{type(exc).__name__}: {exc}"
                    else:
                        client, missing = probe.result()
                        if not missing:
                            return
                        last_error = f"search attributes not registered: {', '.join(missing)}"
                if exited.done():
                    tail = self._log_tail()
                    raise _ExitedEarly(
                        f"temporal dev server exited early with code {process.returncode}" + tail,
                        in_use=_IN_USE in tail,
                    )
                if loop.time() >= deadline:
                    raise RuntimeError(
                        f"temporal dev server at {self.address} not healthy after "
                        f"{timeout:.1f}s (last error: {last_error})" + self._log_tail()
                    )
                # Pause before the next probe, waking early if the process dies.
                pause = min(_POLL_INTERVAL, max(0.0, deadline - loop.time()))
                await asyncio.wait({exited}, timeout=pause)
        finally:
            exited.cancel()
            if probe is not None:
                probe.cancel()

    async def _probe(self, client: Client | None) -> tuple[Client, list[str]]:
        """Connect (unless already connected) and list missing search attributes.

        Args:
            client: A client from an earlier successful probe, or ``None``.

        Returns:
            The connected client and the sorted names of unregistered search attributes.
        """
        if client is None:
            client = await Client.connect(
                self.address,
                namespace=self._namespace,
                connect_timeout=timedelta(seconds=_RPC_TIMEOUT),
            )
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=self._namespace),
            timeout=timedelta(seconds=_RPC_TIMEOUT),
        )
        return client, sorted(set(self._search_attributes) - set(response.custom_attributes))

    async def wait_exited(self) -> int:
        """Wait until the server process ends, for whatever reason; its exit code.

        Raises:
            RuntimeError: If the server is not started.
        """
        process = self._process
        if process is None:
            raise RuntimeError("dev server is not started")
        return await process.wait()

    def log_tail(self) -> str:
        """The end of what this run wrote to the log file, formatted for an error message."""
        return self._log_tail()

    def _log_tail(self) -> str:
        """Return the end of what this run wrote to the log file, formatted for an error."""
        if self._log_file is None:
            return " (no log_file configured; pass one to capture server output)"
        try:
            with self._log_file.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
                data = fh.read()
        except OSError as exc:
            return f" (could not read {self._log_file}: {exc})"
        lines = data.decode("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return f" (log file {self._log_file} is empty)"
        return f"\n--- tail of {self._log_file} ---\n" + "\n".join(lines)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its whole process group; safe to call repeatedly.

        Sends SIGTERM to the group, waits up to ``timeout`` seconds, then SIGKILLs the group
        and reaps the process.

        Args:
            timeout: Seconds to wait for a graceful shutdown before killing.
        """
        process = self._process
        if process is None:
            return
        try:
            if process.returncode is None:
                signal_group(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=timeout)
                except TimeoutError:
                    signal_group(process.pid, signal.SIGKILL)
                    await process.wait()
                # Sweep stragglers left in the group now that the leader is gone. Only done
                # right after reaping it, so the group id cannot have been recycled.
                signal_group(process.pid, signal.SIGKILL)
        finally:
            if process.returncode is not None:
                self._process = None

    async def __aenter__(self) -> DevServer:
        """Start the server (with the default timeout) and return it."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()


class _ExitedEarly(RuntimeError):
    """The server process ended before it was healthy; ``in_use``: its log says an address
    was in use."""

    def __init__(self, message: str, *, in_use: bool) -> None:
        super().__init__(message)
        self.in_use = in_use
