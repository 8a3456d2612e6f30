"""What ``harness compare``'s outputs cost: two runs of 5,000 cases (one in ten slowed by 10%), the candidate with a
report and traces of one case in fifty, so every flagged case gets its links looked up.

Times, each next to ``compare()`` on the same runs (measured in the same process, as the baseline): the links of
every flagged case (``case_links``: a report and a traces folder looked up per case), ``regressions.json``
(``to_json``, with links and pruned of empty values, beside the comparison's dict dumped as it is, which is
what it cost before), ``summary.md`` (``markdown``) and the terminal table (``print_table``, to a
160-column console in memory). Prints each figure and its ratio to ``compare()``.
Run: /work/main/.venv/bin/python benchmarks/bench_compare_output.py
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_compare import run_records  # noqa: E402
from harness.regress import compare  # noqa: E402
from harness.regress.render import case_links, dumps, markdown, print_table, to_json  # noqa: E402
from harness.store import read_run  # noqa: E402
from harness.store.rundir import RunFolder  # noqa: E402
from tests.synthetic import make_run  # noqa: E402

CASES = 5000


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """The best of ``repeat`` timings of ``fn()`` (the machine is shared: the best is the least disturbed)."""
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        base = make_run(Path(tmp), run_records(CASES, 1), suite="bench", started_at="2026-01-01T00:00:00Z")
        slowed = run_records(CASES, 2, slow_every=10)
        cand = make_run(Path(tmp), slowed, suite="bench", started_at="2026-01-02T00:00:00Z")
        folder = RunFolder(cand)
        folder.report_path.write_text("<!DOCTYPE html><title>report</title>")
        for record in slowed[::50]:
            trace = folder.profile_dir(record["case_id"])
            trace.mkdir(parents=True)
            (trace / "rank0.1.pt.trace.json.gz").write_bytes(b"\x1f\x8b")
        a, b = read_run(base), read_run(cand)
        compare_s, result = timed(lambda: compare(a, b), repeat=1)
        flagged = sum(len(v) for k, v in result.buckets.items() if k != "unchanged")
        print(f"two runs of {CASES:,} cases: {flagged} flagged, {len(result.regressed)} regressed")
        print(f"  compare() (the baseline)                      {compare_s:7.3f} s")
        links_s, links = timed(lambda: case_links(result))
        with_links = sum(1 for v in links.values() if "report" in v)
        with_traces = sum(1 for v in links.values() if "traces" in v)
        figures = [(f"case_links ({with_links} reports, {with_traces} traces)", links_s)]
        figures.append(("the comparison's dict dumped as it is", timed(lambda: dumps(result.to_dict()))[0]))
        figures.append(("to_json (regressions.json: links, pruned)", timed(lambda: to_json(result, links))[0]))
        figures.append(("markdown (summary.md)", timed(lambda: markdown(result, links))[0]))

        def table() -> str:
            from rich.console import Console

            out = io.StringIO()
            print_table(result, Console(file=out, width=160, soft_wrap=False), links)
            return out.getvalue()

        figures.append(("print_table (terminal)", timed(table)[0]))
        for name, seconds in figures:
            print(f"  {name:<45} {seconds:7.3f} s  = {seconds / compare_s:.2f}x compare()")


if __name__ == "__main__":
    main()
