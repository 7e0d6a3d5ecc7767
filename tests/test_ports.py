"""Ports for our servers come from outside the kernel's ephemeral range, and a dev server
start that finds its address taken is tried again."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from workers.devserver import DevServer
from workers.ports import (
    EPHEMERAL_RANGE_FILE,
    LOWEST_PORT,
    bind_free_port,
    ephemeral_range,
    free_port,
    port_in_use,
)


def test_the_range_is_the_kernels() -> None:
    if sys.platform != "linux":
        pytest.skip("the range is read from /proc on Linux")
    low, high = (int(p) for p in EPHEMERAL_RANGE_FILE.read_text().split())
    assert ephemeral_range() == (low, high)


def test_picked_ports_lie_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert all(LOWEST_PORT <= p <= 65535 and not low <= p <= high for p in ports), ports
    assert len(set(ports)) > 150  # random: pickers side by side rarely meet
    with socket.socket() as sock:
        port = bind_free_port(sock)
        assert sock.getsockname()[1] == port and not low <= port <= high


def test_a_port_in_use_is_seen() -> None:
    with socket.socket() as sock:
        port = bind_free_port(sock)
        sock.listen()
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


async def test_a_start_on_a_taken_port_is_retried_on_a_fresh_one(tmp_path: Path) -> None:
    """The port this server picked is taken before it starts (as another process's could
    be): the first start exits with ``address already in use``, the second runs."""
    log = tmp_path / "server.log"
    server = DevServer(headless=True, log_file=log)
    taken = int(server.address.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        await server.start(timeout=60)
        try:
            port = int(server.address.rsplit(":", 1)[1])
            assert port != taken and port_in_use("127.0.0.1", port)
            assert "address already in use" in log.read_text()
        finally:
            await server.stop()
