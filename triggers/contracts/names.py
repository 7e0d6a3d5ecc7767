"""The strings Temporal records and our code matches on: workflow types, signal, query and
activity names, search attribute keys and ``ApplicationError`` types.

Each is in the histories of running workflows: changing a value breaks their replay.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

# Workflow types.
TRIGGER_WORKFLOW_TYPE = "TriggerWorkflow"
RUN_WORKFLOW_TYPE = "RunWorkflow"

# The trigger workflow's signals (payloads: ``EventBatch``, ``TriggerSpec``) and queries
# (results: ``TriggerStatus``, ``TriggerState``, ``RecentEvents``).
EVENTS_SIGNAL = "events"
CONFIGURE_SIGNAL = "configure"
STATUS_QUERY = "status"
SNAPSHOT_QUERY = "snapshot"
RECENT_EVENTS_QUERY = "recent_events"

# Activities, all on the triggers task queue.
RUN_SOURCE_ACTIVITY = "run_source"
RECOVER_TRIGGER_ACTIVITY = "recover_trigger"
WAIT_RUN_ACTIVITY = "wait_run"
SPILL_EVENTS_ACTIVITY = "spill_events"
UNSPILL_EVENTS_ACTIVITY = "unspill_events"
HTTP_REQUEST_ACTIVITY = "http_request"
# ``RunWorkflow``'s local activity: the next planning step of a graph run.
PLAN_GRAPH_ACTIVITY = "plan_graph"
# A user's workflow on its own queue calls it by this name with ``task_queue=`` the
# triggers queue.
LOAD_PAYLOAD_ACTIVITY = "load_payload"

# Search attributes on the trigger workflow and its runs (registered on the namespace).
TRIGGER_ID = SearchAttributeKey.for_keyword("TriggerId")
TRIGGER_PROVIDER = SearchAttributeKey.for_keyword("TriggerProvider")
TRIGGER_OWNER = SearchAttributeKey.for_keyword("TriggerOwner")
# The same, by name, with their Temporal type: what ``triggers dev`` registers on its
# server, ``/readyz`` and create check, and another cluster registers once per namespace.
SEARCH_ATTRIBUTES: dict[str, str] = {
    key.name: "Keyword" for key in (TRIGGER_ID, TRIGGER_PROVIDER, TRIGGER_OWNER)
}

# ApplicationError types. The source activity's: a config error is final for that config
# version (non-retryable); a transient one is retried by the workflow with backoff.
PROVIDER_CONFIG_ERROR = "ProviderConfigError"
PROVIDER_TRANSIENT_ERROR = "ProviderTransientError"
# ``load_payload``'s, both non-retryable: swept after the retention period (or the trigger
# was deleted), or over what an activity result may carry.
PAYLOAD_MISSING = "PayloadMissing"
PAYLOAD_TOO_LARGE = "PayloadTooLarge"
# ``http_request``'s: a refused address and a request that cannot be made are final; an
# HTTP 5xx, a transient network error and a timeout are retried up to the node's attempts.
BLOCKED_ADDRESS = "BlockedAddress"
REQUEST_ERROR = "RequestError"
HTTP_STATUS = "HttpStatus"
TRANSIENT = "Transient"
TIMEOUT = "Timeout"
HTTP_NON_RETRYABLE = (BLOCKED_ADDRESS, REQUEST_ERROR)
# A graph run's: a node failed (the message names it), the plan could not be made for
# the event (a bad expression over its data), or planning went over a bound (a node's items,
# a step's CPU budget).
NODE_FAILED = "NodeFailed"
EVENT_ERROR = "EventError"
GRAPH_LIMIT = "GraphLimit"
