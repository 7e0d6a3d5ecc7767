"""A real HTTP server on 127.0.0.1 whose answers each test scripts (uvicorn + Starlette)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from workers.ports import bind_free_port

Handler = Callable[[Request], Awaitable[Response] | Response]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    """Serves ``handler`` on 127.0.0.1; ``stop()`` and ``start()`` again keep the same port."""

    handler: Handler = field(default=lambda _r: JSONResponse([]))
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.requests.append(
            Seen(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                body=body,
            )
        )
        result = self.handler(request)
        response = await result if isinstance(result, Awaitable) else result
        await response(scope, receive, send)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.port:
            sock.bind(("127.0.0.1", self.port))
        else:  # outside the ephemeral range, like every port our tests pick
            self.port = bind_free_port(sock)
        config = uvicorn.Config(
            self._app, interface="asgi3", log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None
