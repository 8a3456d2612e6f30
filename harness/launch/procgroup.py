"""One rank's place in a distributed run: its environment, its share of the CPU, and its process groups.

torchrun and the elastic launch API describe a worker through environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``, ``TORCHELASTIC_RESTART_COUNT``). A
process started without them is rank 0 of a world of one, so ``python -m harness.worker`` works alone too.

The default process group uses nccl on CUDA and gloo on the CPU. Beside it there is always a gloo *control*
group over the same ranks, for the small Python objects the ranks exchange (run folder, suite digest,
statuses) and for ``monitored_barrier``, which only gloo has and which names the ranks that did not arrive.

The process group's store is the agent's (under torchrun every worker is a client of the store its agent
hosts). That store outlives a worker group, so after a restart it still holds the keys the dead group wrote;
on one node the keys of each attempt are kept apart by the restart count, so a restarted rank never reads a
dead rank's address.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

#: Seconds added to a case's own timeout for what its deadline does not cover (build, ops count, profile).
CASE_GRACE_S = 120.0
#: Budget of a case that states no timeout.
DEFAULT_CASE_BUDGET_S = 3600.0


@dataclass(frozen=True)
class RankEnv:
    """Where this process stands in the run, as its launcher described it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    nodes: int = 1
    restart_count: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    agent_store: bool = False
    run_id: str = "none"

    @property
    def launched(self) -> bool:
        """True when a launcher (torchrun, the elastic agent, or a scheduler) set the rank variables."""
        return self.master_addr is not None and self.master_port is not None

    @classmethod
    def from_environ(cls, env: dict | None = None) -> RankEnv:
        """Read the torchrun variables from ``env`` (``os.environ`` by default); absent ones mean a world of 1."""
        env = os.environ if env is None else env

        def num(key: str, default: int) -> int:
            value = env.get(key)
            return int(value) if value not in (None, "") else default

        world = num("WORLD_SIZE", 1)
        return cls(
            rank=num("RANK", 0),
            world_size=world,
            local_rank=num("LOCAL_RANK", 0),
            local_world_size=num("LOCAL_WORLD_SIZE", world),
            nodes=num("GROUP_WORLD_SIZE", 1),
            restart_count=num("TORCHELASTIC_RESTART_COUNT", 0),
            master_addr=env.get("MASTER_ADDR") or None,
            master_port=num("MASTER_PORT", 0) or None,
            agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
            run_id=env.get("TORCHELASTIC_RUN_ID", "none"),
        )


def cpu_share(local_rank: int, local_world_size: int, cores: list[int]) -> list[int]:
    """The cores rank ``local_rank`` of ``local_world_size`` ranks on this node may use: its own slice.

    Each rank gets ``len(cores) // local_world_size`` consecutive cores (at least one). With more ranks than
    cores the slices would overlap, so every rank keeps all of them (and one thread, see ``apply_cpu_share``).
    """
    cores = sorted(cores)
    if local_world_size <= 1 or len(cores) < local_world_size:
        return cores
    per = len(cores) // local_world_size
    return cores[local_rank * per : (local_rank + 1) * per]


def apply_cpu_share(env: RankEnv) -> int:
    """Pin this rank to its slice of the node's cores and size torch's thread pool to it; returns the threads.

    Ranks of one node measuring at the same time would otherwise each start a thread per core and fight over
    them, and every CPU number of the sweep would measure the contention.
    """
    import torch

    try:
        available = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = list(range(os.cpu_count() or 1))
    mine = cpu_share(env.local_rank, env.local_world_size, available)
    threads = max(1, len(available) // max(1, env.local_world_size))
    if mine != available:
        try:
            os.sched_setaffinity(0, mine)
        except (AttributeError, OSError):
            pass
    torch.set_num_threads(threads)
    return threads


def backend_for(device: str) -> str:
    """nccl for CUDA devices, gloo for the CPU (and for the CUDA test double, which runs on the CPU)."""
    from harness.measure import device as devices

    return devices.get(device).dist_backend


def case_budget_s(case) -> float:
    """The longest a case may keep its rank busy (s): its timeout plus a grace for work outside its deadline."""
    timeout = getattr(case, "timeout_s", None)
    return (float(timeout) if timeout else DEFAULT_CASE_BUDGET_S) + CASE_GRACE_S


class ProcessGroups:
    """The run's default process group and its gloo control group, with the collectives the harness uses."""

    def __init__(self, env: RankEnv, device: str, timeout_s: float) -> None:
        self.env = env
        self.device = device
        self.backend = backend_for(device)
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.store = None
        self.control = None

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def init(self) -> ProcessGroups:
        """Join the process group (and build the control group); returns self."""
        import torch.distributed as dist

        env = self.env
        if env.launched:
            # Under an agent every rank is a client of the agent's store; started by hand, rank 0 hosts it.
            self.store = dist.TCPStore(
                env.master_addr,
                env.master_port,
                world_size=None if env.agent_store else env.world_size,
                is_master=not env.agent_store and env.rank == 0,
                timeout=self.timeout,
                wait_for_workers=False,
            )
        else:
            self.store = dist.HashStore()
        prefix = f"harness/pg/{env.run_id}/" + (f"attempt{env.restart_count}" if env.nodes == 1 else "multinode")
        if self.device.startswith("cuda"):
            from harness.measure import device as devices

            devices.get(self.device).activate()  # nccl binds each rank's communicator to the current device
        dist.init_process_group(
            self.backend,
            store=dist.PrefixStore(prefix, self.store),
            rank=env.rank,
            world_size=env.world_size,
            timeout=self.timeout,
        )
        self.control = (
            dist.group.WORLD if self.backend == "gloo" else dist.new_group(backend="gloo", timeout=self.timeout)
        )
        return self

    def new_group(self, ranks: list[int]):
        """A process group of ``ranks`` on the run's backend. Every rank must call it, in the same order.

        Its collectives time out after half the control group's timeout: a rank whose peer failed in the middle
        of a step (on the CPU, where nothing can interrupt a waiting collective) gives up there first and
        records the peer's failure, while the ranks waiting at the next exchange of the control group are still
        within theirs.
        """
        import torch.distributed as dist

        return dist.new_group(ranks=ranks, backend=self.backend, timeout=self.timeout / 2)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src, group=self.control)
        return box[0]

    def barrier(self, timeout_s: float) -> None:
        """Wait until every rank arrives, at most ``timeout_s`` seconds; rank 0's error names the late ranks."""
        import torch.distributed as dist

        if self.world_size == 1:
            return
        dist.monitored_barrier(
            group=self.control, timeout=datetime.timedelta(seconds=timeout_s), wait_all_ranks=self.rank == 0
        )

    def store_get(self, key: str) -> str | None:
        """A value kept in the launcher's store across restarts of the worker group (None when unset)."""
        if self.store is None or not self.store.check([key]):
            return None
        return self.store.get(key).decode()

    def store_set(self, key: str, value: str) -> None:
        """Keep ``value`` in the launcher's store, where a restarted worker group finds it."""
        if self.store is not None:
            self.store.set(key, value)

    def close(self) -> None:
        """Leave the process group (safe to call twice)."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
