"""A hostile PostgreSQL server: it asks for the password in clear, then refuses the login
with an error message that quotes the password it received (as some proxies and poolers
do). Just enough of the wire protocol for asyncpg's connection start."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
PROTOCOL_3 = 196608
AUTH_CLEARTEXT = 3


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _error(fields: dict[bytes, str]) -> bytes:
    body = b"".join(k + v.encode() + b"\0" for k, v in fields.items()) + b"\0"
    return _message(b"E", body)


@dataclass
class FakePostgres:
    host: str = "127.0.0.1"
    port: int = 0
    # Each password a client sent, in order.
    passwords: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!I", await reader.readexactly(4))
                rest = await reader.readexactly(length - 4)
                (code,) = struct.unpack("!I", rest[:4])
                if code == SSL_REQUEST:
                    writer.write(b"N")  # no TLS: go on in clear
                    await writer.drain()
                    continue
                if code == PROTOCOL_3:
                    break
                return
            params = rest[4:].split(b"\0")
            user = dict(zip(params[::2], params[1::2], strict=False)).get(b"user", b"").decode()
            writer.write(_message(b"R", struct.pack("!I", AUTH_CLEARTEXT)))
            await writer.drain()
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            payload = await reader.readexactly(length - 4)
            if kind != b"p":
                return
            password = payload.rstrip(b"\0").decode()
            self.passwords.append(password)
            writer.write(
                _error(
                    {
                        b"S": "FATAL",
                        b"V": "FATAL",
                        b"C": "28P01",
                        b"M": f'password authentication failed for user "{user}" '
                        f"(password {password!r})",
                        b"D": f"the password given was {password}",
                    }
                )
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
