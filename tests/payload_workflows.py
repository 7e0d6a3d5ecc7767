"""A workflow that reads a claim-checked payload the way a run does: the ``load_payload``
activity by name on the triggers task queue (from its own queue)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.names import LOAD_PAYLOAD_ACTIVITY
    from triggers.contracts.payloads import LoadPayloadInput, LoadPayloadResult


@dataclass
class LoadsPayloadInput:
    ref: str
    triggers_queue: str


@workflow.defn(name="LoadsPayload")
class LoadsPayload:
    @workflow.run
    async def run(self, inp: LoadsPayloadInput) -> Any:
        result = await workflow.execute_activity(
            LOAD_PAYLOAD_ACTIVITY,
            LoadPayloadInput(ref=inp.ref),
            task_queue=inp.triggers_queue,
            result_type=LoadPayloadResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result.data
