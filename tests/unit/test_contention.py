"""Contention over a case's timed window and the noisy mark: a fake /proc and a scripted GPU for the arithmetic, and
real CPU-hungry processes and a real stall for what a user sees in the record and the summary table."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from harness.commands.run import print_summary
from harness.measure import contention, phases
from harness.measure.contention import ContentionTracker, GpuWatch, Proc, allowed_cpus, cpu_shares, reasons
from harness.measure.runner import CaseContext, ModelCache, measure_case
from harness.measure.telemetry import Reading
from harness.store.record import CONTENTION_FIELDS, Record
from tests.synthetic import make_record, tiny_case


def _cpu_line(name: str, user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0) -> str:
    return f"{name} {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} 0 0"


def write_proc(root: Path, cpus: dict[str, dict], own: tuple[int, int], load: str = "0.52 0.40 0.30 2/100 999"):
    """A /proc with the /proc/stat lines of ``cpus``, this process's utime and stime, and the load average."""
    (root / "self").mkdir(parents=True, exist_ok=True)
    total = {k: sum(c.get(k, 0) for c in cpus.values()) for k in ("user", "system", "idle", "steal")}
    lines = [_cpu_line("cpu", **total), *(_cpu_line(name, **fields) for name, fields in cpus.items()), "intr 1 2 3"]
    (root / "stat").write_text("\n".join(lines) + "\n")
    # a command name with spaces and parentheses, as /proc allows
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", str(own[0]), str(own[1]), "0", "0", "20"]
    (root / "self" / "stat").write_text(f"4242 (python (bench) x) {' '.join(fields)}\n")
    (root / "loadavg").write_text(load + "\n")


def test_other_processes_and_steal_from_a_fake_proc(tmp_path):
    quiet = {"cpu0": {"user": 100, "idle": 800}, "cpu1": {"user": 100, "idle": 800}, "cpu2": {"user": 5}}
    write_proc(tmp_path, quiet, own=(150, 30))
    tracker = ContentionTracker(Proc(tmp_path, cpus=[0, 1]))
    with tracker:
        # over the window, on the two cores this process may use (cpu2 is not one of them, however busy):
        # 200 ticks in all, 120 busy, 10 stolen; this process used 30 of them
        busy = {
            "cpu0": {"user": 160, "system": 10, "idle": 830},
            "cpu1": {"user": 150, "idle": 840, "steal": 10},
            "cpu2": {"user": 9000},
        }
        write_proc(tmp_path, busy, own=(170, 40), load="3.10 1.00 0.50 4/100 999")
    rec = Record()
    tracker.fill(rec)
    assert rec.contention == {
        "steal_pct": 5.0,
        "other_cpu_pct": 45.0,
        "load_avg": 3.1,
        "cpus": 2,
        "gpu_other_processes": None,
        "gpu_clock_events": None,
        "gpu_temperature_c": None,
    }
    assert rec.noise == ["other processes used 45% of the 2 cores this run may use", "CPU steal 5%"]


def test_a_window_too_short_to_judge_and_an_absent_proc_give_nulls(tmp_path):
    write_proc(tmp_path, {"cpu0": {"user": 100}}, own=(0, 0))
    proc = Proc(tmp_path, cpus=[0])
    start = proc.times()
    write_proc(tmp_path, {"cpu0": {"user": 130}}, own=(0, 0))  # 0.3 core-seconds, all of them someone else's
    assert cpu_shares(start, proc.times(), hz=100) == {"steal_pct": None, "other_cpu_pct": None}
    nothing = ContentionTracker(Proc(tmp_path / "no-proc", cpus=[0, 1]))
    with nothing:
        pass
    rec = Record()
    nothing.fill(rec)
    assert rec.contention == {**dict.fromkeys(CONTENTION_FIELDS), "cpus": 2}
    assert rec.noise == []


class ScriptedGpu:
    """An NVML reader stand-in: one (pids, clock-event mask, temperature) per reading, the last one repeated."""

    def __init__(self, *script):
        self.script = list(script)

    def _next(self):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def read(self):
        self.current = self._next()
        return Reading(time.monotonic(), temperature_c=self.current[2], reasons_mask=self.current[1])

    def compute_pids(self):
        return self.current[0]


def _watched(reader, pid=100) -> tuple[dict, list[str]]:
    watch = GpuWatch(reader, interval_s=60.0, pid=pid)
    tracker = ContentionTracker(None, watch)
    with tracker:
        pass
    return tracker.result()


def test_another_process_on_the_gpu_and_a_thermal_clock_event_are_contention():
    thermal = pynvml.nvmlClocksEventReasonSwThermalSlowdown
    power_cap = pynvml.nvmlClocksEventReasonSwPowerCap
    found, why = _watched(ScriptedGpu(([100], power_cap, 70), ([100, 1234], power_cap | thermal, 83)))
    assert found["gpu_other_processes"] == 1 and found["gpu_temperature_c"] == 83
    assert found["gpu_clock_events"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert why == ["another process on the GPU (pid 1234)", "clock events: sw_thermal_slowdown"]
    assert found["steal_pct"] is None and found["cpus"] is None  # no CPU side given


def test_a_gpu_at_its_power_cap_alone_is_not_contention():
    found, why = _watched(ScriptedGpu(([100], pynvml.nvmlClocksEventReasonSwPowerCap, 75)))
    assert (found["gpu_other_processes"], found["gpu_clock_events"], why) == (0, ["sw_power_cap"], [])


def test_in_another_pid_namespace_one_listed_process_is_this_one():
    found, why = _watched(ScriptedGpu(([7001, 7002], 0, 60)), pid=12)
    assert found["gpu_other_processes"] == 1 and why == ["another process on the GPU"]
    found, why = _watched(ScriptedGpu(([7001], 0, 60)), pid=12)
    assert found["gpu_other_processes"] == 0 and why == []


def test_a_gpu_that_nvml_cannot_read_gives_nulls():
    class Lost:
        def read(self):
            raise pynvml.NVMLError_GpuIsLost()

        def compute_pids(self):
            return None

    found, why = _watched(Lost())
    assert {k: found[k] for k in ("gpu_other_processes", "gpu_clock_events", "gpu_temperature_c")} == dict.fromkeys(
        ("gpu_other_processes", "gpu_clock_events", "gpu_temperature_c")
    )
    assert why == []


def test_the_tracker_finds_the_gpu_through_the_shared_nvml_reader(monkeypatch):
    from harness.measure import telemetry
    from tests.unit.test_telemetry import FakeGpu, FakeNvml, fake_cuda

    gpu = FakeGpu(
        "GPU-0000",
        nvmlDeviceGetComputeRunningProcesses=[SimpleNamespace(pid=os.getpid()), SimpleNamespace(pid=31337)],
    )
    fake_cuda(monkeypatch, FakeNvml([gpu]), ["GPU-0000"])
    telemetry.close_shared_readers()
    try:
        run = SimpleNamespace(ctx=SimpleNamespace(telemetry=True, device="cuda:0"))
        tracker = ContentionTracker.for_run(run)
        assert tracker.gpu is not None
        with tracker:
            pass
        rec = Record()
        tracker.fill(rec)
    finally:
        telemetry.close_shared_readers()
    assert rec.contention["gpu_other_processes"] == 1 and rec.contention["gpu_temperature_c"] == 71
    assert "another process on the GPU (pid 31337)" in rec.noise
    # a run that turned NVML off reads no GPU
    off = ContentionTracker.for_run(SimpleNamespace(ctx=SimpleNamespace(telemetry=False, device="cuda:0")))
    assert off.gpu is None


def test_the_rule_reads_a_record_group():
    assert reasons({"other_cpu_pct": 19.9, "steal_pct": 4.9, "cpus": 2}) == []
    assert reasons({"other_cpu_pct": 20.0, "cpus": 1}) == ["other processes used 20% of the 1 core this run may use"]
    assert reasons({"gpu_other_processes": 3}, [5, 6, 7]) == ["3 other processes on the GPU (pids 5, 6, 7)"]
    assert reasons({}) == reasons(None) == []


@pytest.fixture
def ctx(tmp_path) -> CaseContext:
    return CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())


@pytest.fixture
def hogs():
    """A CPU-hungry process on each core this process may use, pinned there, for the length of the test."""
    started = []
    try:
        for core in allowed_cpus():
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            os.sched_setaffinity(hog.pid, {core})
            started.append(hog)
        time.sleep(0.2)  # let them start spinning
        yield started
    finally:
        for hog in started:
            hog.kill()
            hog.wait()


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc")
def test_a_case_measured_beside_cpu_hungry_processes_is_marked_noisy(ctx, hogs):
    rec = measure_case(tiny_case(measure={"min_seconds": 1.0, "min_iters": 3}), ctx)
    assert rec["status"] == "ok"
    assert rec["contention"]["other_cpu_pct"] >= contention.OTHER_CPU_PCT
    assert rec["contention"]["cpus"] == len(allowed_cpus()) and rec["contention"]["load_avg"] is not None
    assert rec["noisy"] is True
    assert any(r.startswith("other processes used") for r in rec["noise"]), rec["noise"]


def test_a_stalled_step_is_replaced_kept_and_named(ctx, monkeypatch):
    def stall_the_third_step(name, run):
        if name == "timed":
            took = []

            def stalling():
                # Steps of a set length (sleeps, not the model's work, which a busy machine can slow down tenfold
                # from one step to the next): 50 ms, and 2 s for the third, a stall however busy the machine.
                time.sleep(2.0 if len(took) == 2 else 0.05)
                took.append(1)

            run.step = stalling

    monkeypatch.setattr(phases, "PHASE_HOOKS", [stall_the_third_step])
    rec = measure_case(tiny_case(measure={"min_seconds": 0.0, "min_iters": 5}), ctx)
    seen = rec["samples_ms"], rec["noise"]
    # (a busy machine may stall another step of its own: at least the injected one is counted)
    assert rec["status"] == "ok" and rec["stalled_steps"] >= 1, seen
    # every step is in the record, the stall where it happened, and the window ran on past its five steps: to
    # five that are not stalls, unless more steps of the machine's own stalled and the window's time bound ended it
    assert rec["iters"] == len(rec["samples_ms"]) >= 6, seen
    assert rec["iters"] - rec["stalled_steps"] == 5 or rec["stalled_steps"] > 1, seen
    assert rec["samples_ms"][2] > 3 * rec["step_ms_median"], seen
    assert rec["noisy"] is True
    stalled = f"{rec['stalled_steps']} stalled step"
    assert any(r.startswith(stalled) and "> 3x the median" in r for r in rec["noise"]), rec["noise"]
    # the throughput is the median step's: the stall does not halve it
    assert rec["throughput_img_s"] == pytest.approx(2 * 1000 / rec["step_ms_median"], rel=1e-3)
    assert rec["throughput_total_img_s"] < rec["throughput_img_s"]


def test_the_summary_table_marks_a_noisy_case_with_its_first_reason():
    reasons_seen = ["other processes used 46% of the 2 cores this run may use", "CPU steal 12%"]
    noisy = {**make_record(), "noisy": True, "noise": reasons_seen}
    quiet = make_record(model="resnet18")
    out = io.StringIO()
    print_summary([noisy, quiet], file=out)
    lines = out.getvalue().splitlines()
    row = next(line for line in lines if "resnet50" in line)
    assert f"{noisy['throughput_img_s']:.1f}" in row and "noisy: other processes used 46%" in row
    note = " ".join(line.split("│")[-2].strip() for line in lines[lines.index(row) :][:3])
    assert "noisy: other processes used 46% of the 2 cores this run may use (+1 more)" in note
    assert "noisy" not in next(line for line in lines if "resnet18" in line)
