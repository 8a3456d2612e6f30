"""Measurement: a case as a recipe of phases (``case``, ``phases``), its timing alone or in DDP lockstep
(``rank_timing``, ``timing``, ``collective``), its trackers (``trackers``: memory, telemetry, the profiler), and
scenarios, ops, numerics and peak FLOP/s."""
