"""Measurement: scenarios, timing, memory, ops, telemetry, numerics, peak FLOP/s and the profiler."""
