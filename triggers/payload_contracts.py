"""What crosses the Temporal boundary for event data kept in the claim-check store.

Pure (no database imports), so workflows can import it through the sandbox. The store
itself is ``triggers/payloads.py``; the activity is ``activities/payloads.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The activity's name, on the triggers task queue (a user's workflow on its own queue calls
# it by this name with ``task_queue=`` the triggers queue).
LOAD_PAYLOAD = "load_payload"
# ApplicationError types it raises; both are non-retryable.
PAYLOAD_MISSING = "PayloadMissing"  # swept after the retention period, or trigger deleted
PAYLOAD_TOO_LARGE = "PayloadTooLarge"  # over what an activity result may carry
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
