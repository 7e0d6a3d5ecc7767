"""Which Kafka offsets may be committed: the bookkeeping of the Kafka provider, no I/O.

Kafka commits one number per partition, "everything below this offset is done", so a
commit must never pass a message that was handed out and not yet acknowledged. ``Offsets``
records, per partition, the offsets handed out and not yet acked; the commit point is the
lowest of those (everything below it was acked), or one past the highest offset handed out
when none is pending. Acks out of order, gaps in the offsets (compaction, transaction
markers) and acks for partitions this consumer no longer owns are all safe: the commit
point only moves over acked messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

P = TypeVar("P")  # a partition (aiokafka's TopicPartition; anything hashable in tests)


class Offsets(Generic[P]):
    def __init__(self) -> None:
        self._pending: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def handed_out(self, partition: P, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def acked(self, partition: P, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None:
            pending.discard(offset)

    def rewind(self, partition: P, offset: int) -> None:
        """The consumer goes back to ``offset`` (a nack): what was handed out from there on
        will be handed out again."""
        pending = self._pending.get(partition, set())
        self._pending[partition] = {o for o in pending if o < offset}
        if partition in self._next:
            self._next[partition] = min(self._next[partition], offset)

    def commit_point(self, partition: P) -> int | None:
        pending = self._pending.get(partition)
        if pending:
            return min(pending)
        return self._next.get(partition)

    def to_commit(self, owned: Iterable[P]) -> dict[P, int]:
        """The partitions (among ``owned``) whose commit point passed the last commit."""
        out: dict[P, int] = {}
        for partition in owned:
            point = self.commit_point(partition)
            if point is not None and point > self._committed.get(partition, -1):
                out[partition] = point
        return out

    def committed(self, offsets: Mapping[P, int]) -> None:
        for partition, offset in offsets.items():
            self._committed[partition] = max(self._committed.get(partition, -1), offset)

    def last_commit(self, partition: P) -> int | None:
        return self._committed.get(partition)

    def in_flight(self, partitions: Iterable[P] | None = None) -> int:
        """Messages handed out and not acked, in ``partitions`` (default: all)."""
        keys = self._pending if partitions is None else partitions
        return sum(len(self._pending.get(p, ())) for p in keys)

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions this consumer no longer owns: drop what it knew of them (a later ack
        of one of their messages changes nothing; their new owner redelivers it)."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._next.pop(partition, None)
            self._committed.pop(partition, None)
