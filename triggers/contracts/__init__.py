"""Every contract that crosses the Temporal boundary, in one place.

- ``names``: workflow types, signal / query / activity names, search attribute keys and
  ``ApplicationError`` types: the strings a history records and other code matches on.
- ``trigger``: the trigger workflow's input, state, signal payload, query results and the
  activities it runs for itself (recovery, spilling its backlog).
- ``source``: the source activity's input and result.
- ``run``: ``RunWorkflow``'s result and the graph's activities: ``plan_graph`` (a planning
  step, local) and ``http_request``.
- ``payloads``: ``load_payload``, the claim-check activity (user workflows call it too).

Pure (dataclasses and constants, no I/O): workflows import these modules through the
sandbox, and the API and activities import them instead of any ``workflows`` module.
Renaming a name or a dataclass field here breaks the replay of saved histories
(``tests/histories/``); adding a field with a default does not.
"""
