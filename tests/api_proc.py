"""The API as a separate process (``triggers api``, uvicorn as production runs it) on
127.0.0.1, so tests can send it malformed HTTP and read its own memory from /proc."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import eventually
from workers.ports import free_port


def port_below_ephemeral_range() -> int:
    """A free port on 127.0.0.1 that the kernel never hands out by itself (so the Temporal
    dev server's internal ports and other processes' ephemeral ones cannot take it)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(10_000, low) if low > 10_100 else free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class ApiProcess:
    def __init__(
        self,
        *,
        temporal: str,
        database_url: str,
        task_queue: str,
        secret_keys: str,
        log: Path,
        **settings: str,
    ) -> None:
        self.port = port_below_ephemeral_range()
        self._env = {
            **os.environ,
            "TRIGGERS_TEMPORAL_ADDRESS": temporal,
            "TRIGGERS_DATABASE_URL": database_url,
            "TRIGGERS_TASK_QUEUE": task_queue,
            "TRIGGERS_SECRET_KEYS": secret_keys,
            "TRIGGERS_API_HOST": "127.0.0.1",
            "TRIGGERS_API_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **{f"TRIGGERS_{k.upper()}": v for k, v in settings.items()},
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "api"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        async def up() -> bool:
            assert proc.poll() is None, self.log.read_text()[-3000:]
            async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
                return (await http.get("/healthz")).status_code == 200

        await eventually(up, timeout=60, interval=0.2)

    def rss_kib(self) -> int:
        """Resident set size now."""
        assert self.proc is not None
        return _status_kib(self.proc.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        """The highest resident set size the process has had (VmHWM)."""
        assert self.proc is not None
        return _status_kib(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
