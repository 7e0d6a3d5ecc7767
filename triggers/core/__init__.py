"""The pure domain: no I/O, no clock, no database, so workflows can import it through the
sandbox and tests need no server.

``events`` (the event and its bounds), ``conditions`` (CEL: compiling, the activation, the
decisions), ``cel_values`` and ``cel_errors`` (values into and out of CEL, its errors and
their safe messages), ``cel_budget`` (the CPU budget of an evaluation), ``intake`` (an
event's verdict), ``graph`` and ``nodes`` (run graphs: validation and planning),
``schedule`` (cron), ``signatures`` (webhook signature schemes), ``durations``.
"""
