"""Synthetic run folders in the real store format, for tests and benchmarks of compare and report.

The records are made with ``Record`` and written with the store's own writers, so they are exactly what a real
run writes; only the numbers are generated (from a seeded RNG, around the given means). ``throughput_img_s`` is
that of the median step (batch size x 1000 / median ms) and ``throughput_total_img_s`` images over the total time;
a record can be marked noisy with its reasons, and a run can carry the machine probes of its manifest
(``peak``, and ``health``: start and end probes with their spread; see ``probe`` and ``health``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from harness.store.record import CONTENTION_FIELDS, Record
from harness.store.rundir import RunFolder, append_record, new_manifest, status_counts, write_json_atomic
from harness.suite import Case

FINGERPRINT = {
    "host": "bench-01",
    "torch": "2.13.0",
    "cuda": None,
    "cudnn": None,
    "driver": None,
    "device_type": "cpu",
    "device_name": "Synthetic CPU",
    "device_uuid": None,
    "cpu_model": "Synthetic CPU",
    "num_threads": 2,
    "git_revision": "abc123",
}


def case_id(model: str, mode: str, bs: int, precision: str, cl: bool, res: int = 224) -> str:
    """The case id the harness gives this case (``harness.suite.Case.id``, the one rule)."""
    return Case(
        model=model, mode=mode, batch_size=bs, resolution=res, precision=precision, channels_last=cl, compile=False
    ).id


def make_record(
    model: str = "resnet50",
    mode: str = "inference",
    batch_size: int = 32,
    precision: str = "fp32",
    channels_last: bool = False,
    resolution: int = 224,
    step_ms: float = 100.0,
    noise: float = 0.01,
    n: int = 30,
    seed: int = 0,
    status: str = "ok",
    run_id: str = "run",
    suite: str = "synthetic",
    noisy: list[str] | bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One record whose ``n`` step samples are normal around ``step_ms`` with relative sd ``noise``.

    ``noisy``: None writes the noise fields as a record that did not measure contention has them (``noisy``
    null, no reasons); a list of reasons marks the record noisy with them; True or False sets the flag alone.
    Any other field may be given (or overridden) by name in ``extra``.
    """
    rng = random.Random(seed)
    cid = case_id(model, mode, batch_size, precision, channels_last, resolution)
    rec = Record(
        run_id=run_id,
        case_id=cid,
        suite=suite,
        model=model,
        mode=mode,
        batch_size=batch_size,
        requested_batch_size=batch_size,
        resolution=resolution,
        precision=precision,
        channels_last=channels_last,
        compile=False,
        device="cpu",
        status=status,
    )
    if status == "ok":
        samples = [max(step_ms * (1 + rng.gauss(0, noise)), 1e-3) for _ in range(n)]
        total = sum(samples) / 1000
        ordered = sorted(samples)

        def q(p: float) -> float:
            return ordered[min(int(p * (len(ordered) - 1) + 0.5), len(ordered) - 1)]

        rec.samples_ms = samples
        rec.iters = n
        rec.step_ms_median, rec.step_ms_p10, rec.step_ms_p90, rec.step_ms_p99 = q(0.5), q(0.1), q(0.9), q(0.99)
        tput = rec.throughput_img_s = batch_size * 1000 / rec.step_ms_median  # the median step's, as a run records
        rec.throughput_ci95 = [tput * (1 - 2 * noise / n**0.5), tput * (1 + 2 * noise / n**0.5)]
        rec.rss_peak_mib = 500.0 + batch_size * 10
        rec.flops_per_img = 8.18e9 * (resolution / 224) ** 2
        rec.macs_per_img = rec.flops_per_img / 2
        rec.stated_gmacs = 4.089 * (resolution / 224) ** 2
        rec.ops_deviation = rec.macs_per_img / 1e9 / rec.stated_gmacs - 1
        rec.achieved_tflops = rec.flops_per_img * rec.throughput_img_s / 1e12
    else:
        rec.message = f"synthetic {status}"
    out = rec.to_dict()
    ok = status == "ok"
    reasons = list(noisy) if isinstance(noisy, list) else []
    out.update(
        throughput_total_img_s=batch_size * n / total if ok else None,
        stalled_steps=0 if ok else None,
        noisy=True if reasons else noisy if isinstance(noisy, bool) else None,
        noise=reasons,
        contention=dict.fromkeys(CONTENTION_FIELDS),
    )
    out.update(extra)
    return out


def probe(copy_gbps: float, matmul: dict[str, float] | None = None, conv: dict[str, float] | None = None) -> dict:
    """A machine probe as a run's manifest records it (``measure_peak``'s numbers): copy bandwidth (GB/s),
    matmul TFLOP/s by dtype (default fp32 1.0, bf16 2.0) and conv TFLOP/s by dtype and memory format."""
    return {
        "matmul_tflops": dict(matmul or {"fp32": 1.0, "bf16": 2.0}),
        "conv_tflops": dict(conv or {}),
        "copy_gbps": copy_gbps,
        "at": "2026-01-01T00:00:00Z",
    }


def health(start: dict, end: dict | None = None) -> dict:
    """A manifest's ``health``: the start and end probes, and the spread of every number both have
    (|start - end| / max(start, end), keyed ``copy_gbps``, ``matmul_tflops.<dtype>``, ``conv_tflops.<key>``)."""

    def numbers(p: dict) -> dict[str, float]:
        out = {"copy_gbps": p["copy_gbps"]}
        for group in ("matmul_tflops", "conv_tflops"):
            out.update({f"{group}.{k}": v for k, v in p.get(group, {}).items()})
        return out

    spread = {}
    if end is not None:
        a, b = numbers(start), numbers(end)
        spread = {k: abs(a[k] - b[k]) / max(a[k], b[k]) for k in a if k in b}
    return {"start": start, "end": end, "spread": spread}


def make_run(
    root: Path,
    records: list[dict[str, Any]],
    suite: str = "synthetic",
    started_at: str = "2026-01-01T00:00:00Z",
    fingerprint: dict[str, Any] | None = None,
    name: str | None = None,
    peak: dict[str, Any] | None = None,
    health: dict[str, Any] | None = None,
) -> Path:
    """Write a complete run folder (manifest, rank file, merged records) under ``root``; returns its path. ``peak``
    and ``health`` go into the manifest (see ``probe`` and ``health``); a run given ``health`` alone gets the best
    of its start and end probes as its ``peak``, as a real run does."""
    run_dir = Path(root) / suite / (name or started_at.replace(":", "").replace("-", ""))
    run_dir.mkdir(parents=True)
    for r in records:
        append_record(run_dir / "records-rank0.jsonl", r)
    RunFolder(run_dir).merge()
    manifest = new_manifest(run_dir.name, {"name": suite}, fingerprint or dict(FINGERPRINT))
    manifest.update(started_at=started_at, finished_at=started_at, status="complete", counts=status_counts(records))
    if health is not None:
        manifest["health"] = health
        if peak is None:
            probes = [p for p in (health["start"], health.get("end")) if p]
            peak = {
                "matmul_tflops": {
                    k: max(p["matmul_tflops"].get(k, 0) for p in probes) for k in probes[0]["matmul_tflops"]
                },
                "conv_tflops": {k: max(p["conv_tflops"].get(k, 0) for p in probes) for k in probes[0]["conv_tflops"]},
                "copy_gbps": max(p["copy_gbps"] for p in probes),
            }
    if peak is not None:
        manifest["peak"] = peak
    write_json_atomic(run_dir / "manifest.json", manifest)
    return run_dir


def tiny_case(**overrides) -> Case:
    """A resnet18 case at 32 px with phases of a few steps, for tests that measure a real case quickly."""
    spec = {
        "model": "resnet18",
        "mode": "inference",
        "batch_size": 2,
        "resolution": 32,
        "precision": "fp32",
        "device": "cpu",
        "warmup": {"min_iters": 1, "max_iters": 2, "max_seconds": 1},
        "measure": {"min_seconds": 0.01, "min_iters": 2},
    }
    spec.update(overrides)
    return Case.from_dict(spec)
