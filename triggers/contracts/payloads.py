"""What crosses the Temporal boundary for event data kept in the claim-check store
(activity ``load_payload``).

The store itself is ``triggers/infra/payloads.py``; the activity is ``activities/payloads.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The largest ``LoadPayloadResult`` (its encoded Temporal payload, in bytes) the activity
# returns: Temporal's default blob size error limit (2 MiB) with room for the envelope. The
# SDK would fail a larger result on every attempt; the activity fails it once, for good.
LOAD_MAX_RESULT_BYTES = 2 * 1024 * 1024 - 1024


@dataclass
class LoadPayloadInput:
    """``ref``: an ``Event.data_ref`` or a ``Verdict.input_ref``."""

    ref: str


@dataclass
class LoadPayloadResult:
    """The stored value, decoded from its JSON (so ``dict``/``list``/scalars)."""

    data: Any = None
