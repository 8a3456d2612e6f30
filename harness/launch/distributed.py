"""One rank of a distributed run, start to finish: join the group, agree on the suite and the run folder,
measure this rank's share, and (on rank 0) merge every rank's records into the run.

The run folder is opened once. ``harness run`` opens it before it launches the workers and passes it with
``--run-dir``; under a bare ``torchrun -m harness.worker SUITE`` rank 0 opens it and broadcasts its path, and
keeps the path in the launcher's store so that a restarted worker group writes into the same folder.

``sweep``: the cases are sharded across the ranks by estimated cost (``harness.launch.sharding``), each rank
measures its shard on its own device and appends to its own ``records-rank<N>.jsonl``; records say
``world_size: 1`` (each case was measured by one rank alone) and ``rank``. ``ddp``: training cases only (suite
validation refuses inference cases under ddp), each measured by sub-groups of ranks together
(``harness.launch.ddp``).

At the end every rank meets at a barrier bounded by the largest shard's case budgets; rank 0 then merges the
records, and writes the manifest with the world size and each rank's counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, LaunchError
from harness.launch.ddp import print_scaling, run_ddp
from harness.launch.procgroup import ProcessGroups, RankEnv, apply_cpu_share, case_budget_s
from harness.launch.sharding import Work, plan_work


def suite_digest(resolved: dict | None, case_ids: list[str]) -> str:
    """A short hash of the resolved suite (without its file path, which may differ by node) and its case ids."""
    body = {k: v for k, v in (resolved or {}).items() if k != "source"}
    text = json.dumps({"suite": body, "cases": list(case_ids)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_same_suite(groups: ProcessGroups, digest: str, summary: str) -> None:
    """Refuse to run, on every rank, when some rank's suite (or case list) differs from rank 0's."""
    seen = groups.gather((digest, summary))
    differ = [r for r, (d, _) in enumerate(seen) if d != seen[0][0]]
    if differ:
        theirs = "; ".join(f"rank {r} has {seen[r][1]} (digest {seen[r][0]})" for r in differ)
        raise LaunchError(
            f"the suite differs between ranks: rank 0 has {seen[0][1]} (digest {seen[0][0]}); {theirs}. "
            "Give every rank the same suite file and the same --filter (on several nodes, the same copy)"
        )


#: Test-only fault injection: the rank measuring this case id SIGKILLs itself on the case's first attempts
#: (``HARNESS_TEST_KILL_ATTEMPTS`` of them, 1 by default).
KILL_ENV = "HARNESS_TEST_KILL_CASE"
KILL_ATTEMPTS_ENV = "HARNESS_TEST_KILL_ATTEMPTS"


def with_fault_injection(measure):
    """``measure``, or (when ``HARNESS_TEST_KILL_CASE`` names a case) a wrapper that kills its worker.

    The wrapper runs after the worker loop has noted the case as started, so the kill lands in the middle of
    the case as far as the run's bookkeeping goes. It kills on the case's first ``HARNESS_TEST_KILL_ATTEMPTS``
    attempts (default 1); later attempts, after restarts, measure normally.
    """
    target = os.environ.get(KILL_ENV)
    if not target:
        return measure
    deaths = int(os.environ.get(KILL_ATTEMPTS_ENV) or 1)
    from harness.launch.worker import unfinished_attempts

    def measure_or_die(case, ctx):
        if case.id == target and unfinished_attempts(ctx.run_dir, ctx.rank)[case.id] <= deaths:
            os.kill(os.getpid(), signal.SIGKILL)
        return measure(case, ctx)

    return measure_or_die


_TERMINATED = False


def _restart_pending(env: RankEnv) -> bool:
    """True when the agent stopped this worker (SIGTERM) and will start the group again."""
    return _TERMINATED and env.restart_count < int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))


def _sigterm_as_interrupt() -> None:
    # The agent stops a worker group with SIGTERM (a peer died, or the user pressed Ctrl-C). Raising
    # KeyboardInterrupt lets the case in hand be noted as interrupted, so it is retried without counting as a
    # crash: only the case whose worker really died (SIGKILL, segfault) is blamed for it.
    def handler(signum, frame):
        global _TERMINATED
        _TERMINATED = True
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:
        pass


def _load_suite(opts):
    """The suite this rank runs: from its file, or (joining or resuming a run) as the run's manifest kept it."""
    from harness.suite import Suite, load_suite

    folder = opts.run_dir or opts.resume
    if folder:
        from harness.store.rundir import read_manifest

        return Suite.from_resolved(read_manifest(Path(folder))["suite"])
    if not opts.suite:
        raise HarnessError("name a suite file (torchrun ... -m harness.worker suites/smoke.yaml), or --resume RUN_DIR")
    return load_suite(Path(opts.suite))


def _starting_cases(opts, suite) -> tuple[list, dict | None]:
    """The cases and resolved suite this rank believes in, before the ranks compare them."""
    from harness.launch.session import select_cases
    from harness.store.rundir import read_manifest
    from harness.suite import Case

    folder = opts.run_dir or opts.resume
    if folder:
        manifest = read_manifest(Path(folder))
        if "cases" not in manifest:
            raise LaunchError(f"{folder}: its manifest lists no cases, so no worker can join it")
        return [Case.from_dict(c) for c in manifest["cases"]], manifest.get("suite")
    return select_cases(suite.cases(), opts.filter), suite.resolved()


def _open_run_dir(opts, env: RankEnv, groups: ProcessGroups, suite) -> Path:
    """Rank 0 opens (or finds again) the run folder; every rank gets its path."""
    from harness.launch.session import new_plan, resume_plan
    from harness.store.rundir import read_manifest

    outcome: dict[str, str] = {}
    failure: HarnessError | None = None
    if groups.rank == 0:
        key = f"harness/run-dir/{env.run_id}"
        try:
            if opts.run_dir:
                read_manifest(Path(opts.run_dir))
                outcome["run_dir"] = str(opts.run_dir)
            elif opts.resume:
                outcome["run_dir"] = str(resume_plan(Path(opts.resume)).run_dir)
            elif (found := groups.store_get(key)) is not None:
                outcome["run_dir"] = found
            else:
                launch = getattr(suite, "launch", None)
                plan = new_plan(
                    suite,
                    Path(opts.out),
                    opts.filter,
                    world_size=env.world_size,
                    launch={
                        "launcher": "torchrun",
                        "strategy": getattr(launch, "strategy", "sweep"),
                        "world_sizes": getattr(launch, "world_sizes", None),
                        "nproc_per_node": env.local_world_size,
                        "nnodes": env.nodes,
                    },
                )
                groups.store_set(key, str(plan.run_dir))
                outcome["run_dir"] = str(plan.run_dir)
        except HarnessError as exc:
            failure = exc
            outcome["error"] = str(exc)
    outcome = groups.broadcast(outcome)
    if failure is not None:
        raise failure
    if "error" in outcome:
        raise LaunchError(f"rank 0 could not open the run folder: {outcome['error']}")
    return Path(outcome["run_dir"])


def _peak(device: str, manifest: dict, rank: int) -> dict | None:
    """This rank's matmul peak (for MFU): from the manifest after a restart, else measured now."""
    known = (manifest.get("ranks") or {}).get(str(rank), {}).get("peak")
    if known:
        return known
    try:
        from harness.measure.peak import measure_peak
    except ImportError:
        return None
    from harness.measure import device as devices

    dev = devices.get(device)
    if dev.is_cuda and (dev.unsupported_reason("fp32") or getattr(dev.api, "fake", False)):
        return None
    return measure_peak(device)


def run_rank(opts) -> int:
    """Run this process's rank of a distributed run (see the module docstring); returns its exit code."""
    import torch

    from harness.measure.precision import resolve_device

    env = RankEnv.from_environ()
    suite = _load_suite(opts)
    cases, resolved = _starting_cases(opts, suite)
    from harness.measure.device import cuda_count

    device = resolve_device(cases[0].device if cases else "auto", env.local_rank, env.local_world_size)
    if device.startswith("cuda"):
        visible = cuda_count()
        if int(device.split(":")[1]) >= visible:
            raise LaunchError(
                f"rank {env.rank} (local rank {env.local_rank}) needs {device} but {visible} GPU(s) are visible; "
                f"start at most {visible} workers per node (--nproc-per-node {visible})"
            )
    timeout = max([case_budget_s(c) for c in cases] or [case_budget_s(None)])
    groups = ProcessGroups(env, device, timeout).init()
    _sigterm_as_interrupt()
    try:
        threads = apply_cpu_share(env) if device == "cpu" else torch.get_num_threads()
        name = (resolved or {}).get("name", "?")
        check_same_suite(groups, suite_digest(resolved, [c.id for c in cases]), f"{name!r} with {len(cases)} cases")
        run_dir = _open_run_dir(opts, env, groups, suite)
        return _measure_share(opts, env, groups, suite, run_dir, device, threads)
    finally:
        groups.close()


def rank_info(env: RankEnv, device: str, threads: int) -> dict[str, Any]:
    """What the manifest keeps about each rank: where it ran and with how many threads."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "local_rank": env.local_rank,
        "device": device,
        "num_threads": threads,
    }


def _context(opts, suite, manifest: dict, run_dir: Path, device: str, rank: int, peak):
    import fnmatch

    from harness.measure.case import CaseContext, ModelCache

    telemetry = getattr(suite, "telemetry", None)
    patterns = opts.profile or None
    return CaseContext(
        run_id=manifest["run_id"],
        suite=manifest["suite"].get("name", "suite"),
        run_dir=run_dir,
        device=device,
        rank=rank,
        world_size=1,
        peak=peak,
        telemetry=bool(getattr(telemetry, "nvml", True)),
        telemetry_interval_ms=int(getattr(telemetry, "interval_ms", 50)),
        model_cache=ModelCache(),
        extra_profile=(lambda c: any(fnmatch.fnmatchcase(c.id, p) for p in patterns)) if patterns else None,
        accuracy=getattr(suite, "accuracy", None),
    )


def _measure_share(opts, env: RankEnv, groups: ProcessGroups, suite, run_dir: Path, device: str, threads: int) -> int:
    from harness.launch.progress import RunProgress
    from harness.launch.session import RunPlan
    from harness.launch.worker import run_cases
    from harness.store.rundir import MANIFEST, read_manifest, write_json_atomic
    from harness.suite import Case

    manifest = read_manifest(run_dir)
    cases = [Case.from_dict(c) for c in manifest["cases"]]
    if int(manifest.get("world_size") or 1) != env.world_size:
        raise LaunchError(
            f"{run_dir} was started with {manifest.get('world_size')} ranks and this launch has {env.world_size}; "
            f"resume it with the same world size (harness run --resume {run_dir} does)"
        )
    launch = manifest.get("launch") or {}
    suite_launch = getattr(suite, "launch", None)
    strategy = launch.get("strategy") or getattr(suite_launch, "strategy", None) or "sweep"
    requested = launch.get("world_sizes") or getattr(suite_launch, "world_sizes", None)
    work = plan_work(cases, strategy, requested, env.world_size)
    peak = _peak(device, manifest, groups.rank)
    infos = groups.gather({**rank_info(env, device, threads), "peak": peak})
    plan = RunPlan(cases, run_dir, manifest, device)
    if groups.rank == 0:
        ranks = manifest.setdefault("ranks", {})
        for r, info in enumerate(infos):
            ranks.setdefault(str(r), {}).update(info, assigned=work.assigned(r))
            ranks[str(r)]["cases"] = [c.id for c in work.shards[r]]
        if "failure" in manifest:  # from an earlier launch of this run; kept, but not as the current state
            manifest.setdefault("earlier_failures", []).append(manifest.pop("failure"))
        manifest.update(status="running", strategy=strategy, peak=manifest.get("peak") or peak)
        manifest["num_threads"] = threads
        manifest["restarts"] = max(int(manifest.get("restarts") or 0), env.restart_count)
        if strategy == "ddp":
            manifest.update(ddp_world_sizes=work.sizes, dropped_world_sizes=work.dropped_sizes or None)
            if work.dropped_sizes:
                print(
                    f"ddp: world sizes {work.dropped_sizes} need more than the {env.world_size} ranks launched; skipped"
                )
        write_json_atomic(run_dir / MANIFEST, manifest)
    ctx = _context(opts, suite, manifest, run_dir, device, groups.rank, peak)
    from harness.measure.case import measure_case

    measure = with_fault_injection(measure_case)
    title = f"{ctx.suite} on {env.world_size} ranks ({strategy})"
    # Every rank waits at the end for the slowest, at most for the largest shard's case budgets.
    budget = max(sum(case_budget_s(c) for c in shard) for shard in work.shards) + 60.0
    interrupted = False
    with RunProgress(run_dir, work.total, title, enabled=groups.rank == 0 and not opts.no_progress):
        try:
            if work.ddp_cases:
                one_rank_ddp = bool(getattr(suite_launch, "one_rank_ddp", False))
                run_ddp(groups, work.ddp_cases, work.sizes, ctx, measure=measure, one_rank_ddp=one_rank_ddp)
            run_cases(work.shards[groups.rank], ctx, measure=measure)
            _wait_for_all(groups, budget, plan, work)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        if groups.rank == 0:
            _finish(plan, work, "interrupted")
            if not _restart_pending(env) and not opts.launched_by_harness:
                print(f"interrupted; finish the run with: harness run --resume {run_dir}", file=sys.stderr)
        return 130
    if groups.rank != 0:
        return 0
    return _finalise(opts, plan, work)


def _wait_for_all(groups: ProcessGroups, budget_s: float, plan, work: Work) -> None:
    """The end-of-run barrier; a rank that does not arrive in time fails the run (rank 0 closes it first)."""
    try:
        groups.barrier(budget_s)
    except RuntimeError as exc:
        reason = (str(exc).strip().splitlines() or ["barrier failed"])[0]
        if groups.rank == 0:
            plan.manifest["failure"] = reason
            _finish(plan, work, "failed")
        raise LaunchError(
            f"not every rank finished its share within {budget_s:.0f} s ({reason}); what was recorded is kept, "
            f"finish the run with: harness run --resume {plan.run_dir}"
        ) from None


def _finish(plan, work: Work, status: str) -> list[dict]:
    """Per-rank counts into the manifest, then merge and close it with ``status``."""
    from harness.launch.session import finish_run
    from harness.store.rundir import rank_file, read_jsonl, status_counts

    ranks = plan.manifest.setdefault("ranks", {})
    for r in range(len(work.shards)):
        records = read_jsonl(rank_file(plan.run_dir, r))
        ranks.setdefault(str(r), {}).update(records=len(records), counts=status_counts(records))
    return finish_run(plan, status)


def _finalise(opts, plan, work: Work) -> int:
    from harness.launch.inline import print_summary, run_dir_line
    from harness.launch.session import write_run_report
    from harness.store.rundir import MANIFEST, write_json_atomic

    records = _finish(plan, work, "complete")
    if plan.manifest.get("missing"):
        plan.manifest["status"] = "incomplete"
        write_json_atomic(plan.run_dir / MANIFEST, plan.manifest)
    if not opts.no_report:
        try:
            path = write_run_report(plan)
            if path:
                print(f"report: {path}", file=sys.stderr)
        except Exception as exc:  # a report failure must not lose the run
            print(f"report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not opts.launched_by_harness:
        print_summary(records)
        print_scaling(records)
        print(run_dir_line(plan.run_dir))
    return 0 if plan.manifest["status"] == "complete" else 1
