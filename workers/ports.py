"""TCP ports for the servers we start ourselves: the embedded Temporal dev server, the
servers of tests and benchmarks.

A bind to port 0 gets a port from the kernel's ephemeral range, the range it also hands out
for every outgoing connection and for other programs' port-0 binds. ``temporal server
start-dev`` opens internal ports no flag controls; a port of ours taken from that range can
be grabbed by someone else between our pick and the server's bind, or grab one the server
is about to use (a dev server once crashed so: ``bind: address already in use``, then a
panic). Ports outside the ephemeral range are never handed out by the kernel on its own, so
picking ours there leaves only explicit binds to collide with; ``DevServer`` retries a start
that still hits one.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

__all__ = [
    "EPHEMERAL_RANGE_FILE",
    "bind_free_port",
    "ephemeral_range",
    "free_port",
    "port_in_use",
]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below this are well-known and registered ports that local services (PostgreSQL 5432,
# Redis 6379, Temporal 7233, the API 8000...) listen on.
LOWEST_PORT = 10_000
_ATTEMPTS = 200


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, inclusive: Linux's from ``/proc``; elsewhere (or
    unreadable) the platform's usual default."""
    try:
        low, high = (int(p) for p in EPHEMERAL_RANGE_FILE.read_text().split()[:2])
    except (OSError, ValueError):
        return (32768, 60999) if sys.platform == "linux" else (49152, 65535)
    return low, high


def _candidates() -> list[range]:
    low, high = ephemeral_range()
    spans = [range(LOWEST_PORT, low), range(high + 1, 65536)]
    found = [span for span in spans if len(span) > 0]
    if not found:
        raise RuntimeError(
            f"no ports outside the ephemeral range {low}-{high} above {LOWEST_PORT - 1}"
        )
    return found


def bind_free_port(sock: socket.socket, host: str = "127.0.0.1") -> int:
    """Bind ``sock`` to a free port on ``host`` outside the ephemeral range; its number.

    Random among the candidates (weighted by span size), so pickers running side by side
    (parallel tests, several benchmarks) rarely try the same one; a taken one is skipped.

    Raises:
        RuntimeError: No free port was found in ``_ATTEMPTS`` tries.
    """
    spans = _candidates()
    weights = [len(span) for span in spans]
    for _ in range(_ATTEMPTS):
        (span,) = random.choices(spans, weights=weights)
        port = random.choice(span)
        try:
            sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port outside the ephemeral range on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` outside the ephemeral range that was free a moment ago, for a
    server that binds it itself (a child process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return bind_free_port(sock, host)


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` now (a bind there fails; a port that is
    only in TIME_WAIT counts as free, as it does for a server that sets SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
