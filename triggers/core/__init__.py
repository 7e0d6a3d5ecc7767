"""The pure domain: no I/O, no clock, no database, so workflows can import it through the
sandbox and tests need no server.

``events`` (the event and its bounds), ``conditions`` and ``cel_budget`` (CEL, evaluated
within a CPU budget), ``intake`` (an event's verdict), ``graph`` and ``nodes`` (run graphs:
validation and planning), ``schedule`` (cron), ``signatures`` (webhook signature schemes),
``durations``.
"""
