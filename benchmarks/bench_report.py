"""Report speed and size: the report of 20 synthetic runs x 500 records (nightly history of a large suite).

Measures the time to write the page (read, build, render), its size, and the time headless Chromium takes from
navigation to every chart drawn (fresh browser, so plotly.js is parsed cold, as for a user opening the file).
Prints each figure next to its target and the ratio to a baseline measured in the same run: a one-run, one-record
report (the fixed cost of the page: plotly.js, template, browser start-up of the script).

Run: PYTHONPATH=$PWD /work/venv/bin/python benchmarks/bench_report.py
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM  # noqa: E402
from tests.conftest import CHROMIUM_ARGS as ARGS  # noqa: E402

MODELS = {
    "resnet18": 12,
    "resnet34": 22,
    "resnet50": 40,
    "resnet101": 70,
    "resnet152": 100,
    "resnext50_32x4d": 48,
    "resnext101_32x8d": 150,
    "resnext101_64x4d": 140,
    "wide_resnet50_2": 95,
    "wide_resnet101_2": 180,
}


def suite_records(night: int) -> list[dict]:
    """500 records: 10 models x 2 modes x 4 batch sizes x 3 precisions x 2 memory formats, and 20 failures."""
    from tests.synthetic import make_record

    rng = random.Random(night)
    out = []
    for model, base in MODELS.items():
        for mode in ("inference", "train"):
            for bs in (1, 8, 32, 128):
                for precision in ("fp32", "amp_fp16", "amp_bf16"):
                    for cl in (False, True):
                        step = base * bs / 32 * (3 if mode == "train" else 1) * (0.55 if precision != "fp32" else 1)
                        step *= (0.9 if cl else 1.0) * (1 + 0.02 * rng.random()) * (1.1 if night >= 15 else 1.0)
                        r = make_record(model, mode, bs, precision, cl, step_ms=step, seed=len(out) + night * 1000)
                        r["telemetry"] = {
                            "power_avg_w": 300 + rng.random() * 50,
                            "power_max_w": 400.0,
                            "energy_j": 900.0,
                            "img_per_j": r["throughput_img_s"] / 320,
                            "sm_clock_mhz": 1700 + rng.random() * 100,
                            "mem_clock_mhz": 1593,
                            "temperature_c": 65,
                            "utilization_pct": 97,
                            "memory_used_mib": 20000,
                            "throttle_reasons": ["sw_power_cap"] if rng.random() < 0.05 else [],
                        }
                        r["mfu"] = r["achieved_tflops"] / 300
                        if len(out) < 2:
                            r["profile"] = {
                                "trace_dir": "profiles",
                                "top_ops": [
                                    {"name": f"aten::op{i}", "calls": 10, "self_time_ms": 5.0 - i * 0.3, "share": 0.05}
                                    for i in range(15)
                                ],
                                "error": None,
                            }
                        out.append(r)
    for i in range(20):
        out.append(make_record(list(MODELS)[i % 10], "train", 256, "fp32", bool(i % 2), status="oom", seed=i))
    return out


def write_runs(root: Path, nights: int) -> list[Path]:
    from tests.synthetic import make_run

    return [
        make_run(root, suite_records(n), suite="nightly", started_at=f"2026-01-{n + 1:02d}T02:00:00Z")
        for n in range(nights)
    ]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _chromium_cpu_seconds() -> float:
    """CPU seconds used so far by the Chromium processes this script started (renderer, GPU, browser)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _descendants(os.getpid()):
        try:
            if b"chromium" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def browser_seconds(path: Path) -> tuple[float, float, int]:
    """Seconds from navigation to every chart drawn in a fresh headless Chromium, the CPU seconds Chromium
    spent meanwhile (what the load costs on an idle machine, whatever else is running), and the chart count."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        cpu = _chromium_cpu_seconds()
        t = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-rendered]", state="attached", timeout=120_000)
        seconds = time.perf_counter() - t
        cpu = _chromium_cpu_seconds() - cpu
        charts = int(page.get_attribute("body", "data-rendered") or 0)
        drawn = page.locator(".js-plotly-plot").count()
        browser.close()
    if drawn != charts:
        raise RuntimeError(f"{charts} charts announced but {drawn} drawn")
    return seconds, cpu, charts


def write_seconds(runs: list[Path], out: Path) -> float:
    from harness.report import write_report

    t = time.perf_counter()
    write_report(runs, out)
    return time.perf_counter() - t


def main() -> None:
    from tests.synthetic import make_record, make_run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("writing 20 synthetic runs x 500 records ...", flush=True)
        runs = write_runs(tmp / "big", 20)
        small = make_run(tmp / "small", [make_record()])

        base_write = write_seconds([small], tmp / "small.html")
        base_size = (tmp / "small.html").stat().st_size / 2**20
        base_load, base_cpu, _ = browser_seconds(tmp / "small.html")

        big_write = write_seconds(runs, tmp / "big.html")
        size = (tmp / "big.html").stat().st_size / 2**20
        load, cpu, charts = browser_seconds(tmp / "big.html")
        load_avg = os.getloadavg()[0]

    print(f"write report, 20 runs x 500 records: {big_write:6.2f} s  (target < 10 s)", end="")
    print(f"  baseline 1 record: {base_write:.2f} s, ratio {big_write / base_write:.1f}x")
    print(f"report size:                         {size:6.2f} MB (target < 15 MB)", end="")
    print(f"  baseline 1 record: {base_size:.2f} MB, ratio {size / base_size:.2f}x")
    print(f"load in headless Chromium ({charts} charts): {load:5.2f} s  (target < 3 s)", end="")
    print(f"  baseline 1 record: {base_load:.2f} s, ratio {load / base_load:.1f}x")
    print(f"Chromium CPU time for that load:       {cpu:5.2f} s  (baseline 1 record: {base_cpu:.2f} s)", end="")
    print(f"  machine load average {load_avg:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
