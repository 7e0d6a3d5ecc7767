"""A raw HTTP/1.1 client over one TCP connection: sends the bytes it is given, exactly, and
parses what comes back. For requests an ordinary client refuses to send (duplicate or
odd-case headers, lying lengths, broken chunking, a body that trickles in)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        """The server said it closes the connection after this answer."""
        return "close" in self.headers.get("connection", "").lower()


class Closed(Exception):
    """The server closed the connection before (or instead of) an answer."""


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 30.0) -> Answer:
        """Read one response (Content-Length, chunked or close-delimited)."""
        return await asyncio.wait_for(self._answer(), timeout)

    async def _answer(self) -> Answer:
        try:
            return await self._read_answer()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise Closed(f"{type(exc).__name__}: {exc}") from None

    async def _read_answer(self) -> Answer:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = await self._chunked()
        else:
            body = await self._until_close()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            if size == 0:
                return bytes(out)

    async def _until_close(self) -> bytes:
        out = bytearray()
        try:
            while chunk := await self.reader.read(65536):
                out += chunk
        except ConnectionError:
            pass
        return bytes(out)

    async def at_eof(self, timeout: float = 10.0) -> bool:
        """Whether the server closed the connection (EOF or reset), waiting up to
        ``timeout`` seconds; False when it is still open."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def request(
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    length: int | None = None,
    chunked: bool = False,
) -> bytes:
    """The bytes of one request. Headers go out as given (case, order, repeats);
    Content-Length is ``length`` when given, the body's length unless ``chunked``."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in headers:
        n = name.encode("latin-1") if isinstance(name, str) else name
        v = value.encode("latin-1") if isinstance(value, str) else value
        lines.append(n + b": " + v)
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        payload = chunk_body(body)
    else:
        lines.append(b"Content-Length: " + str(len(body) if length is None else length).encode())
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def chunk_body(body: bytes, size: int = 1000) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(c), c)
        for c in (body[i : i + size] for i in range(0, len(body), size))
    ]
    return b"".join(parts) + b"0\r\n\r\n"
