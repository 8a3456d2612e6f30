"""Does the telemetry sampler slow the measured loop? Throughput with a sampler running against without one.

The workload is fixed CPU work: resnet18 inference at 64x64, batch 8, under inference_mode. Rounds alternate
sampler off / on so that drift in the machine's speed (other processes, thermals) lands on both sides equally.

This machine has no GPU, so the sampler reads a stand-in for NVML that does the same Python work per sample as
the real one: a private copy of the pynvml module whose C entry points are replaced by a Python function that
returns success. Every pynvml wrapper still builds its ctypes arguments, looks up its function pointer, checks
the return code and converts the result; only the driver call itself (which releases the GIL) is missing.

Run: PYTHONPATH=. /work/venv/bin/python benchmarks/bench_telemetry.py [--rounds 10] [--iters 100] [--interval-ms 50]
Target: sampler-on throughput within 1% of sampler-off.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The NVML entry points one telemetry sample calls.
SAMPLED = (
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetTotalEnergyConsumption",
)


def _nvml_success(*args) -> int:
    return 0  # NVML_SUCCESS; the output buffers keep their zeroes


def stand_in_nvml():
    """A private copy of pynvml whose sampled C functions succeed without a driver (the real module is untouched)."""
    import pynvml

    spec = importlib.util.spec_from_file_location("_pynvml_stand_in", pynvml.__file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pynvml looks itself up there to define its error classes
    spec.loader.exec_module(module)
    module._nvmlGetFunctionPointer_cache.update({name: _nvml_success for name in SAMPLED})
    return module


def run_round(model, x, iters: int, sampler) -> float:
    """Images per second over ``iters`` forwards, with ``sampler`` started around the timed window if given."""
    import torch

    with torch.inference_mode():
        if sampler is not None:
            sampler.start()
        t = time.perf_counter()
        for _ in range(iters):
            model(x)
        seconds = time.perf_counter() - t
        if sampler is not None:
            sampler.stop(images=iters * x.shape[0])
    return iters * x.shape[0] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per side (default 10)")
    parser.add_argument("--iters", type=int, default=100, help="forwards per round (default 100)")
    parser.add_argument("--interval-ms", type=int, default=50, help="sampling interval (default 50)")
    args = parser.parse_args()

    import torch

    from harness.measure.telemetry import NvmlReader, TelemetrySampler
    from harness.zoo import build_model

    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    x = torch.randn(8, 3, 64, 64)
    reader = NvmlReader(handle=None, nvml=stand_in_nvml())
    t = time.perf_counter()
    for _ in range(1000):
        reader.read()
        reader.energy_mj()
    per_sample_us = (time.perf_counter() - t) / 1000 * 1e6
    sampler = TelemetrySampler("cuda:0", interval_ms=args.interval_ms, reader=reader)

    run_round(model, x, args.iters // 2, None)  # warm-up: first-call allocations, kernel selection
    off, on, samples = [], [], []
    for i in range(args.rounds):
        # ABBA order: a linear drift in machine speed adds equally to both sides
        for sampling in (False, True) if i % 2 == 0 else (True, False):
            if sampling:
                on.append(run_round(model, x, args.iters, sampler))
                samples.append(len(sampler.readings))
            else:
                off.append(run_round(model, x, args.iters, None))
    sampler.close()

    med_off, med_on = statistics.median(off), statistics.median(on)
    paired = statistics.median(a / b for a, b in zip(on, off, strict=True))
    rate = 1000 / args.interval_ms
    print(f"workload: resnet18 inference 64x64 batch 8, {args.iters} forwards per round, {args.rounds} rounds per side")
    print(f"threads: {torch.get_num_threads()}, sampling interval {args.interval_ms} ms")
    print(
        f"stand-in sample cost (reading + energy counter): {per_sample_us:.1f} us of Python per sample, "
        f"{per_sample_us * rate / 1e4:.3f}% of one core at {rate:g} samples/s"
    )
    print(f"samples per 'on' round: {samples}")
    print(f"sampler off: {' '.join(f'{v:6.1f}' for v in off)} img/s  median {med_off:6.1f}")
    print(f"sampler on:  {' '.join(f'{v:6.1f}' for v in on)} img/s  median {med_on:6.1f}")
    ratio = med_on / med_off
    print(f"ratio on/off, medians:              {ratio:.4f}  ({(ratio - 1) * 100:+.2f}%; target within 1%)")
    print(f"ratio on/off, median of pairs:      {paired:.4f}  ({(paired - 1) * 100:+.2f}%)")
    spread = (max(off) - min(off)) / med_off
    print(f"run-to-run spread of 'off' rounds: {spread * 100:.1f}% of the median (the noise floor of this machine)")


if __name__ == "__main__":
    main()
