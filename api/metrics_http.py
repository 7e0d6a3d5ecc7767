"""Counting the webhook route's answers by status code (``triggers_webhook_responses_total``).

A plain ASGI middleware: it reads the status of the answer as it is sent and passes
everything on untouched (no buffering of bodies, no change to streaming or disconnects).
Only paths under ``/webhooks/`` count, whatever the answer (404 for an unknown trigger,
413, 429, 503, a 500).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from triggers.infra.metrics import Metrics

WEBHOOK_PREFIX = "/webhooks/"


class WebhookAnswers:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(WEBHOOK_PREFIX):
            await self.app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.webhook_response(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting)
