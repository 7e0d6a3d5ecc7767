"""The worker as a separate process (``triggers worker``), to kill and restart in tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import eventually


class WorkerProcess:
    def __init__(
        self,
        *,
        temporal: str,
        database_url: str,
        task_queue: str,
        secret_keys: str,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self._env = {
            **os.environ,
            "TRIGGERS_TEMPORAL_ADDRESS": temporal,
            "TRIGGERS_DATABASE_URL": database_url,
            "TRIGGERS_TASK_QUEUE": task_queue,
            "TRIGGERS_SECRET_KEYS": secret_keys,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        mark = f"worker polling task queue {self._env['TRIGGERS_TASK_QUEUE']}"
        with self._log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "worker"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        async def up() -> bool:
            assert proc.poll() is None, self._log.read_text()[-3000:]
            return self._log.read_text().count(mark) >= self.starts

        await eventually(up, timeout=30)

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    def log_text(self) -> str:
        return self._log.read_text()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last heartbeat, like a machine that died."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def stop_with(self, sig: signal.Signals, *, timeout: float) -> tuple[int | None, float]:
        """Send ``sig`` (as Ctrl-C or ``docker stop`` would): the exit code (None: still
        running after ``timeout`` seconds, then killed) and the seconds the stop took."""
        assert self.proc is not None
        proc = self.proc
        started = time.monotonic()
        proc.send_signal(sig)
        try:
            code: int | None = await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            code = None
            proc.kill()
            proc.wait()
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
