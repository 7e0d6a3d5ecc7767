"""The per-trigger signal batcher: every caller learns its own event's fate."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.batcher import SignalBatcher
from triggers.core.events import Event
from triggers.infra.models import Trigger


def _event(key: str) -> Event:
    return Event(id=key, key=key, source="s", type="t", time="2026-01-01T00:00:00+00:00")


def _trigger() -> Trigger:
    return Trigger(id=uuid.uuid4(), user_id=uuid.uuid4(), name="t", provider="webhook")


async def test_concurrent_events_share_signals_within_limits() -> None:
    sent: list[list[str]] = []
    gate = asyncio.Event()

    async def send(_t: Trigger, events: list[Event]) -> None:
        sent.append([e.key for e in events])
        await gate.wait()

    batcher = SignalBatcher(send, max_events=10, max_bytes=1000)
    trigger = _trigger()
    calls = [asyncio.create_task(batcher.submit(trigger, _event("k0"), size=100))]
    while not sent:  # a lone event goes out at once, without waiting for company
        await asyncio.sleep(0)
    calls += [
        asyncio.create_task(batcher.submit(trigger, _event(f"k{i}"), size=100))
        for i in range(1, 25)
    ]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*calls)
    assert sent[0] == ["k0"]
    assert [k for batch in sent for k in batch] == [f"k{i}" for i in range(25)]
    # The 24 that waited went together, in signals of at most 10 events (1000 bytes).
    assert [len(b) for b in sent] == [1, 10, 10, 4]


async def test_a_failed_signal_fails_exactly_its_callers() -> None:
    async def send(_t: Trigger, events: list[Event]) -> None:
        if any(e.key.startswith("bad") for e in events):
            raise RuntimeError("temporal down")

    batcher = SignalBatcher(send, max_events=1)
    trigger = _trigger()
    results = await asyncio.gather(
        batcher.submit(trigger, _event("ok-1"), size=1),
        batcher.submit(trigger, _event("bad-1"), size=1),
        batcher.submit(trigger, _event("ok-2"), size=1),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RuntimeError)
    with pytest.raises(RuntimeError):
        await batcher.submit(trigger, _event("bad-2"), size=1)
    await batcher.submit(trigger, _event("ok-3"), size=1)
