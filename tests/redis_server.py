"""A ``redis-server`` a test starts itself: on a port outside the ephemeral range, with the
append-only file on, so that a restart (``stop()`` then ``start()``, same port, same
folder) finds every entry and consumer group it had; optionally with a password.

The password goes into a config file in the server's folder, not onto the command line
(where ``ps`` would show it)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from workers.ports import free_port

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_TRIES = 5


def redis_server_path() -> str | None:
    """The ``redis-server`` program, or None when it is not installed."""
    return shutil.which("redis-server")


@dataclass
class RedisServer:
    """One ``redis-server`` process in ``folder``; ``start()`` again reuses the port."""

    folder: Path
    password: str | None = None
    port: int = 0
    _proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and return once it answers PING (or NOAUTH: it is up).

        Raises:
            RuntimeError: it did not come up within the deadline (its log is quoted).
        """
        program = redis_server_path()
        if program is None:
            raise RuntimeError("redis-server is not installed")
        fixed = self.port != 0
        for _ in range(1 if fixed else _PORT_TRIES):
            port = self.port if fixed else free_port()
            if await self._try_start(program, port):
                self.port = port
                return
        raise RuntimeError(f"redis-server did not start: {self._log()[-2000:]}")

    async def _try_start(self, program: str, port: int) -> bool:
        conf = self.folder / "redis.conf"
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            "appendonly yes",
            "appendfsync always",
            'save ""',
            f"dir {self.folder}",
            f"logfile {self.folder / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        self.folder.mkdir(parents=True, exist_ok=True)
        conf.write_text("\n".join(lines) + "\n")
        self._proc = await asyncio.create_subprocess_exec(
            program,
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while loop.time() < deadline:
            if self._proc.returncode is not None:  # e.g. the port was taken meanwhile
                return False
            if await _answers(port):
                return True
            await asyncio.sleep(0.05)
        await self.stop()
        return False

    async def stop(self) -> None:
        """Stop the server (SIGTERM: it writes the append-only file first), then wait."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "redis.log").read_text(errors="replace")
        return ""


async def _answers(port: int) -> bool:
    """Whether a server on ``port`` answers PING, having loaded its data: ``+PONG``, or
    ``-NOAUTH`` when it wants a password (``-LOADING`` means not yet)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 1)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line.startswith((b"+PONG", b"-NOAUTH"))
