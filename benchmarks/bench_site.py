"""``harness site`` speed and size: a year of nightly runs (365 nights x 100 cases, with steps and a recovery).

Generates the store (records written through the store's own writers), builds the site cold, then measures:

- the index page load in headless Chromium: navigation to the page's own ``ready`` mark (``performance.mark``),
  median of a few loads in a fresh page each (target < 2 s);
- adding one night to the built site: the next build, which writes one report and rewrites the index and the trend
  page of that suite and device (target < 10 s);
- the trend page load (to ``ready``: the first case drawn), the folder size, the index and trend page sizes.

Each figure is printed next to the baseline of the same measurement on a one-night site built in the same run (the
fixed cost: interpreter, template, browser start-up, plotly.js).

Run: PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/bench_site.py [--nights 365] [--cases 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM  # noqa: E402
from tests.conftest import CHROMIUM_ARGS as ARGS  # noqa: E402

MODELS = {"resnet18": 12, "resnet34": 22, "resnet50": 40, "resnet101": 70, "resnet152": 100}
LOADS = 5


def cases(n: int) -> list[tuple[str, str, int, str, bool, float]]:
    """``n`` cases: models x modes x batch sizes x precisions x memory formats, in that order, cut at ``n``."""
    out = []
    for model, base in MODELS.items():
        for mode in ("inference", "train"):
            for bs in (1, 8, 32, 64, 128):
                for precision in ("fp32", "amp_bf16"):
                    for cl in (False, True):
                        ms = base * bs / 32 * (3 if mode == "train" else 1) * (0.55 if precision != "fp32" else 1)
                        out.append((model, mode, bs, precision, cl, ms * (0.9 if cl else 1.0) + 1.0))
    return out[:n]


def night_records(night: int, chosen: list[tuple]) -> list[dict]:
    """One night: every case around its step time with 1% noise; case 0 is 20% slower from night 200 on (open),
    case 1 25% slower from night 100 to 129 (recovered), case 2 10% faster from night 300 on, and every tenth
    case of the last night 30% slower (the latest night's regressions)."""
    from tests.synthetic import make_record

    rng = random.Random(night)
    records = []
    for i, (model, mode, bs, precision, cl, ms) in enumerate(chosen):
        if i == 0 and night >= 200:
            ms *= 1.25
        if i == 1 and 100 <= night < 130:
            ms *= 1 / 0.75
        if i == 2 and night >= 300:
            ms *= 0.9
        ms *= 1 + 0.01 * rng.gauss(0, 1)
        records.append(make_record(model, mode, bs, precision, cl, step_ms=ms, n=20, seed=night * 1000 + i))
    return records


def write_night(root: Path, night: int, chosen: list[tuple], last: bool = False) -> Path:
    from tests.synthetic import make_run

    records = night_records(night, chosen)
    if last:
        for i in range(0, len(records), 10):
            for key in ("throughput_img_s",):
                records[i][key] *= 0.7
            records[i]["samples_ms"] = [s / 0.7 for s in records[i]["samples_ms"]]
            records[i]["step_ms_median"] /= 0.7
    day = time.gmtime(time.mktime((2025, 1, 1, 2, 0, 0, 0, 0, 0)) + night * 86400)
    return make_run(root, records, suite="nightly", started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", day))


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_times(paths: list[Path], loads: int) -> dict[Path, list[float]]:
    """Seconds from navigation to each page's ``ready`` mark, ``loads`` times per page, each in a fresh page."""
    from playwright.sync_api import sync_playwright

    out: dict[Path, list[float]] = {p: [] for p in paths}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(loads):
            for path in paths:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
                page = context.new_page()
                page.goto(path.as_uri())
                page.wait_for_selector("html[data-ready]", timeout=120_000)
                ms = page.evaluate("() => performance.getEntriesByName('ready')[0].startTime")
                out[path].append(ms / 1000)
                context.close()
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="build the store and the site here and keep them")
    args = parser.parse_args()
    from harness.site import build_site

    tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
    work = args.keep or tmp
    results, site = work / "results", work / "site"
    chosen = cases(args.cases)

    t = time.perf_counter()
    for night in range(args.nights - 1):
        write_night(results, night, chosen)
    generate = time.perf_counter() - t
    print(f"generated {args.nights - 1} nights x {len(chosen)} cases in {generate:.1f} s")

    # Baseline: a one-night site, built cold and then given a second night, in the same run.
    t = time.perf_counter()
    build_site(results / "nightly" / sorted(p.name for p in (results / "nightly").iterdir())[0], work / "base")
    base_build = time.perf_counter() - t

    t = time.perf_counter()
    build_site(results, site)
    cold = time.perf_counter() - t
    print(f"cold build of {args.nights - 1} nights: {cold:.1f} s (one night: {base_build:.2f} s)")

    write_night(results, args.nights - 1, chosen, last=True)
    t = time.perf_counter()
    done = build_site(results, site)
    add = time.perf_counter() - t
    assert len(done.written) == 1 and done.kept == args.nights - 1, done.summary()

    trend = next((site / "trends").glob("*.html"))
    base_trend = next((work / "base" / "trends").glob("*.html"))
    times = load_times([site / "index.html", trend, work / "base" / "index.html", base_trend], LOADS)
    index_s, trend_s = statistics.median(times[site / "index.html"]), statistics.median(times[trend])
    base_index_s, base_trend_s = (
        statistics.median(times[work / "base" / "index.html"]),
        statistics.median(times[base_trend]),
    )

    print(f"\nsite of {args.nights} nights x {len(chosen)} cases (baseline: a one-night site, same run)")
    print(
        f"  index load to ready (median of {LOADS}): {index_s:.3f} s   target < 2 s   "
        f"baseline {base_index_s:.3f} s, ratio {index_s / base_index_s:.2f}"
    )
    print(
        f"  adding one night:                   {add:.2f} s   target < 10 s  "
        f"baseline (cold one-night build) {base_build:.2f} s, ratio {add / base_build:.2f}"
    )
    print(
        f"  trend page load to first case drawn: {trend_s:.3f} s   baseline {base_trend_s:.3f} s, "
        f"ratio {trend_s / base_trend_s:.2f}"
    )
    print(f"  cold full build (reference):        {cold:.1f} s ({cold / (args.nights - 1):.2f} s per night)")
    print(f"  folder size: {folder_size(site) / 2**20:.1f} MiB ({len(list((site / 'runs').iterdir()))} reports)")
    print(
        f"  index.html: {(site / 'index.html').stat().st_size / 1024:.1f} KiB   "
        f"trend page: {trend.stat().st_size / 1024:.1f} KiB   "
        f"a report: {next((site / 'runs').glob('*/report.html')).stat().st_size / 1024:.1f} KiB   "
        f"plotly.js: {(site / 'plotly.js').stat().st_size / 2**20:.1f} MiB"
    )
    opened = (site / "index.html").read_text().count('class="open-regression"')
    print(f"  open regressions on the index: {opened}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
