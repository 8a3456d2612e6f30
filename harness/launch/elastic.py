"""``harness run SUITE --nproc-per-node N``: start the workers through torch's elastic launch API.

The launcher checks what it can before anything starts (worker count, GPUs, the rendezvous settings), opens the
run folder and writes its manifest, then hands ``python -m harness.worker --run-dir RUN`` to an elastic agent
(``torch.distributed.launcher.api.elastic_launch``), which starts one worker per device, watches them, and
restarts the whole group up to ``--max-restarts`` times when one dies. A restarted worker skips what is already
recorded; the case that killed it is retried, and recorded ``crashed`` after a second death.

On several nodes (``--nnodes``) every node runs the same command with the same ``--rdzv-endpoint``; the run
folder (on a filesystem all nodes share) is opened by rank 0 once the nodes have met, as under a bare torchrun.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from harness.errors import LaunchError
from harness.launch.session import LaunchSettings, RunOutcome, RunSession, select_cases, visible_gpus
from harness.store.manifest import RunStatus, exit_code


def check_devices(nproc: int, cases: list, gpus: int | None = None) -> None:
    """Refuse, before launch, more GPU workers than visible GPUs (or cuda cases on a machine without one), and a
    suite that pins one GPU (``cuda:N``) for several workers.

    ``device: auto`` runs on the GPUs when there are any, so it is held to the same count then.
    """
    devices = {str(c.device) for c in cases}
    if not any(d.startswith("cuda") or d == "auto" for d in devices):
        return
    gpus = visible_gpus() if gpus is None else gpus
    pinned = sorted(d for d in devices if d.startswith("cuda:"))
    if pinned and nproc > 1:
        raise LaunchError(
            f"device: {pinned[0]} pins all {nproc} workers of this node to one GPU; use device: cuda (or auto) so "
            f"that each worker measures on its own GPU (cuda:LOCAL_RANK), or --nproc-per-node 1 to use {pinned[0]}"
        )
    on_gpu = sorted(d for d in devices if d.startswith("cuda") or (d == "auto" and gpus > 0))
    if on_gpu and nproc > gpus:
        raise LaunchError(
            f"--nproc-per-node {nproc} asks for {nproc} GPU workers but {gpus} GPU(s) are visible on this node "
            f"(the suite runs on device {on_gpu[0]}); use --nproc-per-node {max(gpus, 1)}"
            + ("" if gpus else ", or device: cpu")
        )


def live_workers(manifest: dict) -> list[int]:
    """Pids of this run's worker processes that are still alive on this host (their launcher may have died).

    A pid counts only if its command line still names ``harness.worker``, so a recycled pid is not mistaken.
    """
    import socket

    host = socket.gethostname()
    alive = []
    for info in (manifest.get("ranks") or {}).values():
        pid = info.get("pid")
        if info.get("host") != host or not isinstance(pid, int):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"harness.worker" in cmdline:
            alive.append(pid)
    return sorted(alive)


def refuse_live_workers(run_dir: Path) -> None:
    """Refuse to resume a run whose workers still measure it (their launcher died, they did not).

    The folder itself is checked first (it exists, is a run folder, can be written), since this is the first look
    ``harness run --resume`` takes at it: a path that is a file, no run or read-only is refused in one line.
    """
    from harness.errors import StoreError
    from harness.launch.session import check_resume_folder
    from harness.store.rundir import RunFolder

    check_resume_folder(Path(run_dir))
    try:
        manifest = RunFolder(run_dir).read_manifest_dict()
    except (StoreError, OSError):
        return  # unreadable: resuming it fails with its own message
    try:
        pids = live_workers(manifest)
    except (AttributeError, TypeError):  # a manifest without a readable ranks table: resuming reports the rest
        return
    if pids:
        raise LaunchError(
            f"{run_dir} is still being measured by its workers (pids {', '.join(map(str, pids))} on this host; "
            "their launcher is gone): wait for them to finish, or stop them (kill PID), then resume"
        )


def launch_config(
    nproc: int,
    nodes: tuple[int, int],
    endpoint: str | None,
    max_restarts: int,
    rdzv_timeout_s: int,
    run_id: str | None = None,
    log_dir: Path | None = None,
):
    """The elastic agent's configuration: c10d rendezvous (on this host alone when there is one node)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig

    timeouts = {"join_timeout": rdzv_timeout_s, "read_timeout": rdzv_timeout_s}
    return LaunchConfig(
        min_nodes=nodes[0],
        max_nodes=nodes[1],
        nproc_per_node=nproc,
        # One node: a fresh id per launch. Several: every node's agent must name the same rendezvous.
        run_id=run_id or (uuid.uuid4().hex if nodes == (1, 1) else "harness"),
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint or "localhost:0",
        rdzv_configs=timeouts,
        rdzv_timeout=rdzv_timeout_s,
        max_restarts=max_restarts,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir) if log_dir else None),
    )


def _failure_text(exc) -> str:
    """The failed launch in one line: the rank that caused it and how. A rank killed by a signal is named before
    ranks that exited with an error (its peers leave on the lost connection, sometimes within the same poll, and
    the earliest exit the agent saw may be theirs); the others are counted."""
    failures = getattr(exc, "failures", None) or {}
    killed = sorted((f.timestamp, rank) for rank, f in failures.items() if f.exitcode < 0)
    rank, failure = (killed[0][1], failures[killed[0][1]]) if killed else exc.get_first_failure()
    how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
    message = failure.message if isinstance(failure.message, str) else str(failure.message)
    detail = "" if message.startswith("To enable traceback") or message.startswith("Signal") else f": {message}"
    others = len(failures) - 1
    also = f" ({others} other rank{'s' if others != 1 else ''} also failed)" if others > 0 else ""
    return f"rank {rank} {how}{detail.splitlines()[0] if detail else ''}{also}"


def _rendezvous_error(exc, endpoint: str | None, nodes: tuple[int, int], timeout_s: int) -> LaunchError:
    from torch.distributed.elastic.rendezvous.api import RendezvousConnectionError

    where = endpoint or "localhost"
    if isinstance(exc, RendezvousConnectionError):
        what = f"could not reach the rendezvous store at {where} (gave up after {timeout_s} s)"
    else:
        what = f"waited {timeout_s} s at the rendezvous {where} but fewer than {nodes[0]} nodes joined"
    return LaunchError(
        f"{what}. Start the same command on every node with the same --rdzv-endpoint HOST:PORT, check that HOST "
        "is reachable and PORT open (on HOST, the first node listens on it), or raise --rdzv-timeout"
    )


def worker_arguments(args, run_dir: Path | None, suite_path: str | None) -> list[str]:
    """The command line of each worker after ``python``."""
    argv = ["-m", "harness.worker"]
    if suite_path:
        argv.append(suite_path)
    if run_dir is not None:
        argv += ["--run-dir", str(run_dir), "--launched-by-harness"]
    else:
        argv += ["--out", str(args.out)]
        if args.resume:
            argv += ["--resume", str(args.resume)]
        for pattern in args.filter or []:
            argv += ["--filter", pattern]
    for pattern in args.profile or []:
        argv += ["--profile", pattern]
    if args.no_report:
        argv.append("--no-report")
    if args.no_progress:
        argv.append("--no-progress")
    return argv


def launch_distributed(args, suite, session: RunSession | None = None) -> RunOutcome:
    """Launch the run's workers through the elastic agent and wait for them.

    ``session`` is the reopened run of ``harness run --resume`` (the world size then comes from its manifest).
    """
    cases = session.cases if session is not None else select_cases(suite.cases(), args.filter)
    settings = LaunchSettings.resolve(args, suite, cases, session.manifest if session is not None else None)
    nproc, nodes = settings.nproc_per_node, settings.nnodes
    check_devices(nproc, cases)
    if nodes[1] > 1 and not settings.rdzv_endpoint:
        raise LaunchError(f"--nnodes {args.nnodes} needs --rdzv-endpoint HOST:PORT, the same on every node")
    single_node = nodes == (1, 1)
    if session is None and single_node:
        info = settings.launch_info("harness", nnodes=1, max_restarts=settings.max_restarts)
        session = RunSession.open(suite, Path(args.out), args.filter, world_size=nproc, launch=info)
    if session is not None and single_node and int(session.manifest.world_size or 1) != nproc:
        raise LaunchError(
            f"{session.run_dir} was started with {session.manifest.world_size} ranks; "
            f"resume it with --nproc-per-node {session.manifest.world_size}"
        )
    folder = session.folder if (session is not None and single_node) else None
    # Workers joining a run folder (or resuming one) take the suite from its manifest; others read the file.
    suite_path = args.suite if folder is None and not args.resume else None
    config = launch_config(
        nproc,
        nodes,
        settings.rdzv_endpoint,
        settings.max_restarts,
        settings.rdzv_timeout_s,
        log_dir=folder.logs_dir if folder else None,
    )
    argv = worker_arguments(args, folder.path if folder else None, suite_path)
    outcome, error = _run_agent(config, argv)
    if isinstance(error, Exception) and not isinstance(error, str):
        error = _rendezvous_error(error, settings.rdzv_endpoint, nodes, settings.rdzv_timeout_s)
    if folder is None:  # several nodes: rank 0 has finished the run folder and printed its summary
        if isinstance(error, LaunchError):
            raise error
        messages = [f"harness run: {error}"] if error else []
        return RunOutcome(outcome, None, None, exit_code(outcome), messages)
    return _close_run(session, outcome, error)


def _run_agent(config, argv: list[str]) -> tuple[str, object]:
    """Run the elastic agent until the worker group ends: (outcome, failure text or rendezvous exception)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    try:
        elastic_launch(config, sys.executable)(*argv)
    except ChildFailedError as exc:
        return "failed", _failure_text(exc)
    except RendezvousError as exc:
        return "failed", exc
    except (SignalException, KeyboardInterrupt):
        return "interrupted", None
    return "complete", None


def _close_run(session: RunSession, outcome: str, error) -> RunOutcome:
    """After the agent: make sure the manifest is closed (the workers wrote it last: read it again)."""
    session.manifest = session.folder.read_manifest()
    status = session.manifest.status
    records = None
    if status != RunStatus.COMPLETE and outcome != RunStatus.COMPLETE:
        # Rank 0 did not close the run, or closed it as interrupted when the agent stopped the failed group.
        status = outcome
        if isinstance(error, str):
            session.manifest.failure = error
        records = session.finish(status)
    if isinstance(error, LaunchError):
        raise error
    messages = []
    if error:
        messages.append(f"harness run: the worker group failed: {error}")
    if status != RunStatus.COMPLETE:
        messages.append(f"harness run: run {status}; finish it with: harness run --resume {session.run_dir}")
    records = session.folder.merged_records() if records is None else records
    return RunOutcome(status, records, session.run_dir, exit_code(status), messages, scaling=True)
