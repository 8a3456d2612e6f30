"""One rank of a distributed run, start to finish: join the group, agree on the suite and the run folder,
measure this rank's share, and (on rank 0) merge every rank's records into the run.

The run folder is opened once. ``harness run`` opens it before it launches the workers and passes it with
``--run-dir``; under a bare ``torchrun -m harness.worker SUITE`` rank 0 opens it and broadcasts its path, and
keeps the path in the launcher's store so that a restarted worker group writes into the same folder.

``sweep``: the cases are sharded across the ranks by estimated cost (``harness.launch.sharding``), each rank
measures its shard on its own device and appends to its own records file; records say
``world_size: 1`` (each case was measured by one rank alone) and ``rank``. ``ddp``: training cases only (suite
validation refuses inference cases under ddp), each measured by sub-groups of ranks together
(``harness.launch.ddp``).

Each rank probes its device's peak before its first case and again once every rank has finished (the manifest's
``ranks[r].health``, rank 0's also at the top level; see ``RunSession.peak``). At the end every rank meets at a
barrier bounded by the largest shard's case budgets, then probes; rank 0 then merges the records, and writes the
manifest with the world size and each rank's counts and probes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, LaunchError
from harness.launch.ddp import run_ddp
from harness.launch.procgroup import ProcessGroups, RankEnv, apply_cpu_share, case_budget_s
from harness.launch.session import LaunchSettings, RunSession, plan_device, select_cases
from harness.launch.sharding import Work, plan_work
from harness.store.manifest import RunStatus


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


def _starting_point(opts) -> tuple[Any, list, dict | None, RunSession | None]:
    """The suite, cases and resolved suite this rank believes in before the ranks compare them, and the run it
    joins when it was given one (``--run-dir`` or ``--resume``: the suite is the one the run's manifest kept)."""
    from harness.suite import Suite, load_suite

    folder = opts.run_dir or opts.resume
    if folder:
        joined = RunSession.join(Path(folder))
        return Suite.from_resolved(joined.manifest.suite), joined.cases, joined.manifest.suite, joined
    if not opts.suite:
        raise HarnessError("name a suite file (torchrun ... -m harness.worker suites/smoke.yaml), or --resume RUN_DIR")
    suite = load_suite(Path(opts.suite))
    return suite, select_cases(suite.cases(), opts.filter), suite.resolved(), None


def _open_session(opts, env: RankEnv, groups: ProcessGroups, suite, settings: LaunchSettings, joined) -> RunSession:
    """Rank 0 opens (or finds again) the run folder; every rank gets its path and the session over it."""
    outcome: dict[str, str] = {}
    failure: HarnessError | None = None
    session: RunSession | None = None
    if groups.rank == 0:
        key = f"harness/run-dir/{env.run_id}"
        try:
            if opts.run_dir:
                session = joined
            elif opts.resume:
                session = RunSession.resume(Path(opts.resume))
            elif (found := groups.store_get(key)) is not None:
                session = RunSession.join(Path(found))
            else:
                info = settings.launch_info("torchrun", nproc_per_node=env.local_world_size, nnodes=env.nodes)
                session = RunSession.open(suite, Path(opts.out), opts.filter, world_size=env.world_size, launch=info)
                groups.store_set(key, str(session.run_dir))
            outcome["run_dir"] = str(session.run_dir)
        except HarnessError as exc:
            failure = exc
            outcome["error"] = str(exc)
    outcome = groups.broadcast(outcome)
    if failure is not None:
        raise failure
    if "error" in outcome:
        raise LaunchError(f"rank 0 could not open the run folder: {outcome['error']}")
    if session is None:
        same = joined is not None and joined.run_dir == Path(outcome["run_dir"]) and not opts.resume
        session = joined if same else RunSession.join(Path(outcome["run_dir"]))
    return session


@dataclass
class RankResult:
    """How this rank's part of the run ended: its exit code and, on rank 0 at the end, the run's records (for the
    command to print) and its folder."""

    code: int
    records: list[dict] | None = None
    run_dir: Path | None = None


def run_rank(opts) -> RankResult:
    """Run this process's rank of a distributed run (see the module docstring)."""
    import torch

    env = RankEnv.from_environ()
    suite, cases, resolved, joined = _starting_point(opts)
    from harness.measure.device import cuda_count

    device = plan_device(cases, env.local_rank, env.local_world_size)
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
        settings = LaunchSettings.resolve(opts, suite, cases, joined.manifest if joined else None)
        session = _open_session(opts, env, groups, suite, settings, joined)
        return _measure_share(opts, env, groups, session, settings, device, threads)
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


def _measure_share(
    opts, env: RankEnv, groups: ProcessGroups, session: RunSession, settings: LaunchSettings, device: str, threads: int
) -> RankResult:
    from harness.launch.caseloop import run_cases
    from harness.launch.progress import RunProgress
    from harness.measure.runner import measure_case

    manifest = session.manifest
    if int(manifest.world_size or 1) != env.world_size:
        raise LaunchError(
            f"{session.run_dir} was started with {manifest.world_size} ranks and this launch has {env.world_size}; "
            f"resume it with the same world size (harness run --resume {session.run_dir} does)"
        )
    work = plan_work(session.cases, settings.strategy, settings.world_sizes, env.world_size)
    peak = session.peak(device, groups.rank)
    infos = groups.gather({**rank_info(env, device, threads), **_probes(session, groups.rank)})
    if groups.rank == 0:
        _keep_probes(manifest, infos)
        for r, info in enumerate(infos):
            part = manifest.rank(r)
            for key, value in info.items():
                setattr(part, key, value)
            part.assigned = work.assigned(r)
            part.cases = [c.id for c in work.shards[r]]
        if manifest.failure is not None:  # from an earlier launch of this run; kept, but not as the current state
            manifest.earlier_failures = [*(manifest.earlier_failures or []), manifest.failure]
            manifest.failure = None
        manifest.status = RunStatus.RUNNING
        manifest.strategy = settings.strategy
        manifest.num_threads = threads
        manifest.restarts = max(int(manifest.restarts or 0), env.restart_count)
        if settings.strategy == "ddp":
            manifest.ddp_world_sizes = work.sizes
            manifest.dropped_world_sizes = work.dropped_sizes or None
            if work.dropped_sizes:
                print(
                    f"ddp: world sizes {work.dropped_sizes} need more than the {env.world_size} ranks launched; skipped"
                )
        session.save()
    ctx = session.context(settings, device, groups.rank, peak)
    title = f"{ctx.suite} on {env.world_size} ranks ({settings.strategy})"
    # Every rank waits at the end for the slowest, at most for the largest shard's case budgets.
    budget = max(sum(case_budget_s(c) for c in shard) for shard in work.shards) + 60.0
    interrupted = False
    with RunProgress(session.folder, work.total, title, enabled=groups.rank == 0 and settings.progress):
        try:
            if work.ddp_cases:
                one_rank = settings.one_rank_ddp
                run_ddp(groups, work.ddp_cases, work.sizes, ctx, measure=measure_case, one_rank_ddp=one_rank)
            run_cases(work.shards[groups.rank], ctx, measure=measure_case)
            _wait_for_all(groups, budget, session, work)
            _end_probe(groups, session, device)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        if groups.rank == 0:
            session.finish(RunStatus.INTERRUPTED, ranks=len(work.shards))
            if not _restart_pending(env) and not opts.launched_by_harness:
                print(f"interrupted; finish the run with: harness run --resume {session.run_dir}", file=sys.stderr)
        return RankResult(130)
    if groups.rank != 0:
        return RankResult(0)
    return _finalise(session, work, settings)


def _probes(session: RunSession, rank: int) -> dict[str, Any]:
    """This rank's peak and health, as its part of the manifest keeps them."""
    part = session.manifest.rank(rank)
    return {"peak": part.peak, "health": part.health}


def _keep_probes(manifest, infos: list[dict[str, Any]]) -> None:
    """Rank 0's peak and health at the top level of the manifest too (each rank's are in its part)."""
    manifest.peak, manifest.health = infos[0].get("peak"), infos[0].get("health")


def _end_probe(groups: ProcessGroups, session: RunSession, device: str) -> None:
    """Every rank probes its device again once all have finished their shares (on the CPU the ranks share the
    machine: a rank that probed while another still measured would disturb that rank's cases and read low itself);
    rank 0 keeps every rank's health and peak in the manifest."""
    session.end_probe(device, groups.rank)
    infos = groups.gather(_probes(session, groups.rank))
    if groups.rank == 0:
        _keep_probes(session.manifest, infos)
        for r, info in enumerate(infos):
            part = session.manifest.rank(r)
            part.peak, part.health = info["peak"], info["health"]
        session.save()


def _wait_for_all(groups: ProcessGroups, budget_s: float, session: RunSession, work: Work) -> None:
    """The end-of-run barrier; a rank that does not arrive in time fails the run (rank 0 closes it first)."""
    try:
        groups.barrier(budget_s)
    except RuntimeError as exc:
        reason = (str(exc).strip().splitlines() or ["barrier failed"])[0]
        if groups.rank == 0:
            session.manifest.failure = reason
            session.finish(RunStatus.FAILED, ranks=len(work.shards))
        raise LaunchError(
            f"not every rank finished its share within {budget_s:.0f} s ({reason}); what was recorded is kept, "
            f"finish the run with: harness run --resume {session.run_dir}"
        ) from None


def _finalise(session: RunSession, work: Work, settings: LaunchSettings) -> RankResult:
    records = session.finish(RunStatus.COMPLETE, ranks=len(work.shards))
    if session.manifest.missing:
        session.manifest.status = RunStatus.INCOMPLETE
        session.save()
    if settings.report:
        session.write_report(lambda text: print(text, file=sys.stderr))
    return RankResult(0 if session.manifest.status == RunStatus.COMPLETE else 1, records, session.run_dir)
