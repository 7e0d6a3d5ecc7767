"""Names of the service's metrics and their labels, shared by the code that counts them.

The trigger workflow counts through ``workflow.metric_meter()`` (replay-safe: the SDK drops
what a replay records) under these names; the process's registry
(``triggers/infra/metrics/``) defines each one (help, labels, buckets) and forwards the
workflow's updates into it. Pure: the workflow imports this module through the sandbox.
"""

from __future__ import annotations

from typing import Final

# The design document's four.
EVENTS_RECEIVED: Final = "triggers_events_received_total"
EVENTS_FILTERED: Final = "triggers_events_filtered_total"
RUNS_STARTED: Final = "triggers_runs_started_total"
LATENCY: Final = "triggers_latency_seconds"
# Beside them.
DUPLICATES: Final = "triggers_duplicates_total"
START_FAILURES: Final = "triggers_run_start_failures_total"
WEBHOOK_RESPONSES: Final = "triggers_webhook_responses_total"
SOURCE_LOOPS: Final = "triggers_source_loops"
SOURCE_RECONNECTS: Final = "triggers_source_reconnects_total"
SOURCE_STATE: Final = "triggers_source_state"
DEAD_LETTERS: Final = "triggers_dead_letters"
# The health of this worker's source loops (connected / paused / failing), their lag.
SOURCE_HEALTH: Final = "triggers_source_health"
SOURCE_LAG: Final = "triggers_source_lag"
SOURCE_OLDEST_UNACCEPTED: Final = "triggers_source_oldest_unaccepted_seconds"

# Labels. ``trigger_id`` is attached by every counting site and kept only when per-trigger
# labels are switched on (``TRIGGERS_METRICS_PER_TRIGGER``).
PROVIDER: Final = "provider"
RESULT: Final = "result"
STAGE: Final = "stage"
TRIGGER: Final = "trigger_id"

# Where a duplicate was recognised (``stage``): the API answered it from its recent keys,
# the trigger workflow from its recent keys, or the run's ID already existed.
STAGE_API: Final = "api"
STAGE_RECENT: Final = "recent"
STAGE_RUN_ID: Final = "run_id"

# What the trigger workflow records (the rest is counted outside workflows).
WORKFLOW_METRICS: Final = (EVENTS_FILTERED, RUNS_STARTED, LATENCY, DUPLICATES, START_FAILURES)
