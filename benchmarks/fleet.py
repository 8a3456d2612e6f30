"""A synthetic fleet store: a year of nightly runs on a dozen GPU types, in the real run-folder format.

``make_fleet(root, runs=1000, records=500)`` writes ``runs`` complete run folders under ``root`` (manifest with
the resolved suite and its cases, environment fingerprint, peak probes; ``records-rank0.jsonl`` and the merged
``records.jsonl``), each with ``records`` records of the schema ``harness/store/record.py`` declares. The runs are
spread over 365 days and over twelve GPU types (one or two hosts each), four suites, drivers that change through
the year and torch versions from 2.4 to 2.8. Throughput is a per-case base figure times the GPU's speed, with
step-time noise; torch 2.7 makes every ``train`` case with ``amp_bf16`` 8% slower, a step the store's users can
find. Deterministic for a given seed.

CLI: ``python benchmarks/fleet.py DIR [--runs 1000] [--records 500] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.store.record import CONTENTION_FIELDS, Record  # noqa: E402
from harness.store.rundir import RunFolder, new_manifest, status_counts, write_json_atomic  # noqa: E402
from harness.suite import Case  # noqa: E402
from harness.zoo.catalog import CATALOG, MODEL_NAMES  # noqa: E402

#: name -> (relative speed, memory GiB, host count)
GPUS = {
    "NVIDIA H100 80GB HBM3": (3.0, 80, 2),
    "NVIDIA H100 PCIe": (2.4, 80, 1),
    "NVIDIA H200": (3.3, 141, 1),
    "NVIDIA B200": (4.5, 180, 1),
    "NVIDIA A100-SXM4-80GB": (1.8, 80, 2),
    "NVIDIA A100-PCIE-40GB": (1.6, 40, 1),
    "NVIDIA L40S": (1.5, 48, 1),
    "NVIDIA L4": (0.6, 24, 1),
    "NVIDIA A10G": (0.7, 24, 1),
    "NVIDIA GeForce RTX 4090": (1.7, 24, 1),
    "NVIDIA GeForce RTX 3090": (1.0, 24, 1),
    "Tesla V100-SXM2-32GB": (0.8, 32, 1),
}
#: (first day of the year it is installed, torch, CUDA, cuDNN) and (first day, driver)
TORCHES = [
    (0, "2.4.1", "12.4", "90100"),
    (90, "2.5.1", "12.4", "90100"),
    (170, "2.6.0", "12.6", "90501"),
    (250, "2.7.1", "12.8", "90701"),
    (330, "2.8.0", "12.8", "91002"),
]
DRIVERS = [(0, "550.54.15"), (120, "550.127.05"), (200, "570.86.15"), (300, "575.57.08")]
SUITES = ["nightly", "nightly-amp", "hardware", "ddp-scaling"]
MODELS = list(MODEL_NAMES)
GMACS = {name: CATALOG[name].gmacs for name in MODELS}  # torchvision's stated GMACs at 224 px
PRECISIONS = ["fp32", "tf32", "amp_fp16", "amp_bf16"]
BATCHES = [1, 32, 64, 128]
START = datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc)
SLOWER_TORCH = "2.7.1"  # the torch version that slowed train amp_bf16 cases


def cases(n: int) -> list[dict]:
    """The first ``n`` cases of the grid model x mode x precision x layout x batch size (640 in all)."""
    grid = itertools.product(MODELS, ["inference", "train"], PRECISIONS, [False, True], BATCHES)
    out = []
    for model, mode, precision, cl, bs in itertools.islice(itertools.cycle(grid), n):
        cid = Case(model=model, mode=mode, batch_size=bs, resolution=224, precision=precision, channels_last=cl).id
        out.append(dict(id=cid, model=model, mode=mode, batch_size=bs, precision=precision, channels_last=cl))
    return out


def _at(table: list[tuple], day: int) -> tuple:
    return [row for row in table if row[0] <= day][-1]


def fingerprint(gpu: str, host: str, day: int) -> dict:
    _, torch, cuda, cudnn = _at(TORCHES, day)
    speed, mem, _ = GPUS[gpu]
    return {
        "host": host,
        "os": "Linux-6.8.0-x86_64-with-glibc2.39",
        "python": "3.11.9",
        "torch": f"{torch}+cu{cuda.replace('.', '')}",
        "cuda": cuda,
        "cudnn": cudnn,
        "driver": _at(DRIVERS, day)[1],
        "device_type": "cuda",
        "device_name": gpu,
        "device_uuid": f"GPU-{zlib.crc32((gpu + host).encode()):010d}",
        "device_count": 8,
        "cpu_model": "AMD EPYC 9454",
        "cpu_count": 96,
        "num_threads": 12,
        "git_revision": f"{day * 7919 % 16**8:08x}",
        "tf32_matmul": False,
        "tf32_cudnn": True,
        "cudnn_benchmark": True,
        "float32_matmul_precision": "highest",
        "mkldnn": True,
        **gpu_settings(speed),
        "gpu_memory_gib": mem,
    }


def gpu_settings(speed: float) -> dict:
    """The NVML settings of a GPU of relative ``speed``: power cap and clocks grow with it; ECC and persistence on."""
    watts = 700.0 if speed > 2 else 300.0
    sm, mem = int(1400 + 150 * speed), int(1500 + 350 * speed)
    out = dict(zip(("gpu_power_limit_w", "gpu_default_power_limit_w"), (watts, watts), strict=True))
    out.update(gpu_app_sm_clock_mhz=sm, gpu_max_sm_clock_mhz=sm, gpu_app_mem_clock_mhz=mem, gpu_max_mem_clock_mhz=mem)
    return {**out, "gpu_ecc": "on", "gpu_persistence": "on", "gpu_mig": "off", "gpu_mig_slice": None,
            "gpu_compute_mode": "default"}  # fmt: skip


def _case_spec(case: dict) -> dict:
    return {
        **case,
        "resolution": 224,
        "compile": False,
        "device": "cuda",
        "weights": None,
        "impl": "harness",
        "warmup": {"min_iters": 5, "max_iters": 100, "max_seconds": 10.0, "window": 5, "tolerance": 0.02},
        "measure": {"min_seconds": 2.0, "min_iters": 30, "max_iters": 10000, "repeats": 1},
        "timeout_s": 600.0,
        "oom_reduce": False,
        "tags": [],
        "profile": False,
        "seed": 0,
    }


def _template() -> dict:
    out = Record().to_dict()
    out.update(contention=dict.fromkeys(CONTENTION_FIELDS), noise=[], noisy=False, stalled_steps=0)
    return out


def run_records(case_list: list[dict], gpu: str, torch: str, run_id: str, suite: str, when: datetime, rng) -> list:
    """The records of one run: each case's 30-40 step samples around its expected step time."""
    speed = GPUS[gpu][0]
    template = _template()
    out = []
    for i, case in enumerate(case_list):
        rec = dict(template)
        bs, model, mode, precision = case["batch_size"], case["model"], case["mode"], case["precision"]
        fast = {"fp32": 1.0, "tf32": 1.8, "amp_fp16": 3.0, "amp_bf16": 2.9}[precision] * (
            1.15 if case["channels_last"] else 1
        )
        step = GMACS[model] * bs * (3 if mode == "train" else 1) / (speed * fast * 40) + 1.5  # ms
        if torch == SLOWER_TORCH and mode == "train" and precision == "amp_bf16":
            step *= 1.08
        n = int(rng.integers(30, 41))
        samples = np.round(step * (1 + np.abs(rng.normal(0, 0.01, n))), 4)
        median = float(np.median(samples))
        tput = bs * 1000 / median
        ordered = np.sort(samples)
        rec.update(
            run_id=run_id,
            case_id=case["id"],
            suite=suite,
            model=model,
            mode=mode,
            batch_size=bs,
            requested_batch_size=bs,
            resolution=224,
            precision=precision,
            channels_last=case["channels_last"],
            compile=False,
            device="cuda",
            device_name=gpu,
            num_threads=12,
            started_at=(when + timedelta(seconds=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            duration_s=round(5 + n * median / 1000, 3),
            warmup_iters=int(rng.integers(8, 40)),
            warmup_s=round(float(rng.uniform(0.2, 3)), 3),
            warmup_reason="stable",
            iters=n,
            samples_ms=samples.tolist(),
            throughput_img_s=round(tput, 4),
            step_ms_median=round(median, 4),
            step_ms_mean=round(float(samples.mean()), 4),
            step_ms_p10=float(ordered[int(0.1 * (n - 1))]),
            step_ms_p90=float(ordered[int(0.9 * (n - 1))]),
            step_ms_p99=float(ordered[-1]),
            throughput_ci95=[round(tput * 0.99, 4), round(tput * 1.01, 4)],
            throughput_total_img_s=round(bs * n * 1000 / float(samples.sum()), 4),
            peak_allocated_mib=round(300 + bs * GMACS[model] * (8 if mode == "train" else 2), 1),
            peak_reserved_mib=round(400 + bs * GMACS[model] * (9 if mode == "train" else 2.5), 1),
            rss_peak_mib=2900.0,
            flops_per_img=GMACS[model] * 2e9 * (3 if mode == "train" else 1),
            macs_per_img=GMACS[model] * 1e9,
            stated_gmacs=GMACS[model],
            ops_deviation=0.0,
            cudnn_benchmark=True,
            tf32_matmul=precision == "tf32",
            telemetry={
                "power_avg_w": round(float(rng.uniform(200, 650)), 1),
                "power_max_w": 690.0,
                "energy_j": None,
                "img_per_j": None,
                "sm_clock_mhz": 1980.0,
                "mem_clock_mhz": 2619.0,
                "temperature_c": 61.0,
                "utilization_pct": 97.0,
                "memory_used_mib": 20000.0,
                "throttle_reasons": None,
            },
            numerics={"top1_agreement": 1.0 if precision == "fp32" else 0.998, "max_rel_err": 0.004},
        )
        rec["achieved_tflops"] = round(rec["flops_per_img"] * tput / 1e12, 6)
        rec["mfu"] = round(min(rec["achieved_tflops"] / (400 * speed), 1.0), 6)
        out.append(rec)
    return out


def machines() -> list[tuple[str, str]]:
    """(GPU, host name) of every machine of the fleet."""
    return [
        (gpu, f"{re.sub('[^a-z0-9]+', '', gpu.lower().replace('nvidia', ''))[:12]}-{h:02d}")
        for gpu, (_, _, hosts) in GPUS.items()
        for h in range(hosts)
    ]


def schedule(runs: int, seed: int = 0) -> list[tuple[int, str, str, str]]:
    """(day, GPU, host, suite) of each run, ``runs`` of them over 365 days, oldest first. The first H100 host runs
    the ``nightly`` suite every night (``runs`` x 365 / 1000 nights); the other runs go round the other hosts with
    a suite drawn at random."""
    rng = np.random.default_rng(seed)
    hosts = machines()
    nightly = min(runs, round(runs * 365 / 1000))
    out = [(int(i * 365 / nightly), *hosts[0], "nightly") for i in range(nightly)]
    others = runs - nightly
    for i in range(others):
        gpu, host = hosts[1 + i % (len(hosts) - 1)]
        out.append((int(i * 365 / others), gpu, host, SUITES[int(rng.integers(0, len(SUITES)))]))
    return sorted(out)


def write_run(root: Path, day: int, gpu: str, host: str, suite: str, n_records: int, rng, minute: int = 0) -> Path:
    when = START + timedelta(days=day, minutes=minute)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(root) / suite / f"{stamp}-{host}-cuda"
    run_dir.mkdir(parents=True, exist_ok=False)
    fp = fingerprint(gpu, host, day)
    torch = _at(TORCHES, day)[1]
    case_list = cases(n_records)
    run_id = f"{stamp}-{host}-cuda-{rng.integers(0, 16**6):06x}"
    records = run_records(case_list, gpu, torch, run_id, suite, when, rng)
    folder = RunFolder(run_dir)
    rank0 = folder.records_path(0)
    with open(rank0, "w") as f:
        f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    try:
        os.link(rank0, folder.merged_path)  # a closed run's merged file: the same records
    except OSError:
        folder.merged_path.write_bytes(rank0.read_bytes())
    specs = [_case_spec(c) for c in case_list]
    suite_doc = {
        "name": suite,
        "source": f"suites/{suite}.yaml",
        "sha256": "0" * 64,
        "description": "",
        "regression": {"baseline": "last-7", "threshold": 0.05},
        "case_count": len(specs),
        "cases": specs,
    }
    manifest = new_manifest(run_id, suite_doc, fp)
    speed = GPUS[gpu][0]
    probe = {
        "matmul_tflops": {"fp32": 60 * speed, "tf32": 400 * speed, "bf16": 800 * speed},
        "conv_tflops": {"fp32": 40 * speed},
        "copy_gbps": 1500 * speed,
        "at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest.update(
        started_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        finished_at=(when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        status="complete",
        counts=status_counts(records),
        peak=probe,
        health={"start": probe, "end": probe, "spread": {}},
        cases=specs,
        case_ids=[c["id"] for c in case_list],
        world_size=1,
        num_threads=12,
        wall_s=3600.0,
        records=len(records),
    )
    write_json_atomic(run_dir / "manifest.json", manifest)
    return run_dir


def make_fleet(root: str | Path, runs: int = 1000, records: int = 500, seed: int = 0) -> list[Path]:
    """Write ``runs`` run folders of ``records`` records each under ``root`` (see the module docstring); returns
    their paths, oldest first."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (day, gpu, host, suite) in enumerate(schedule(runs, seed)):
        out.append(write_run(Path(root), day, gpu, host, suite, records, rng, minute=i % 60))
    return out


def candidate(root: str | Path) -> Path:
    """The newest run of the nightly host: the candidate of ``harness compare --history``."""
    host = machines()[0][1]
    return sorted(Path(root).glob(f"nightly/*-{host}-cuda"))[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="folder to write the runs under (created)")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_fleet(args.dir, args.runs, args.records, args.seed)
    print(f"wrote {len(paths)} runs x {args.records} records under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
