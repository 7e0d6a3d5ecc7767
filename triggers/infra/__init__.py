"""Infrastructure: everything that talks to the outside world or holds process state.

``settings`` (the one pydantic-settings ``Settings``), ``db`` (engines), ``models`` (SQLModel
tables), ``store`` (CRUD), ``payloads`` (the claim-check store), ``queues`` and ``replays``
(task-queue claims, webhook replay fingerprints), ``crypto`` (secret encryption),
``apikeys``, ``net`` (the outbound request guard), ``temporal`` (the client),
``redaction`` (the log filter), ``admission`` (where an event enters: bounds, verdict,
claim check).
"""
