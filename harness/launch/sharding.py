"""Splitting a run's work across ranks: an estimated cost per case, a greedy longest-processing-time assignment,
and the plan of a run (``plan_work``: DDP units for the ``ddp`` strategy, per-rank shards of the rest).

Every rank computes the shards itself from the same case list, so the assignment must be a pure function of
that list and the world size: no clocks, no randomness, no dict ordering that could differ between processes.
Ties are broken by the case's position in the suite and by the lowest rank.

The cost is an estimate of the work a case asks for, not of its time: the stated 224-px GMACs per image scaled by
area to the case's resolution, times the batch size, times a mode factor (a training step is a forward and a
backward, about three forwards). A case's measured time also depends on its warm-up and its ``min_seconds``, which
are the same for most cases of a suite; the estimate orders the cases, the greedy pass evens out the sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: A training step (forward, backward with both gradient products, optimiser step) costs about three forwards.
MODE_FACTOR = {"inference": 1.0, "train": 3.0}

#: Cost of a case whose model is not in the catalog (a torchvision build of an unknown name, say).
UNKNOWN_GMACS = 4.0


def estimated_cost(case) -> float:
    """The estimated work of ``case`` in GMACs per step: stated GMACs (by area) at its resolution x batch x mode."""
    from harness.zoo.catalog import CATALOG

    entry = CATALOG.get(case.model)
    # By area, not the exact ``stated_gmacs``: enough to order the cases, and a case list keeps the shard plan it had.
    gmacs = entry.gmacs * (case.resolution / 224) ** 2 if entry is not None else UNKNOWN_GMACS
    return gmacs * case.batch_size * MODE_FACTOR.get(case.mode, 1.0)


def shard_cases(cases: Sequence, world_size: int, cost=estimated_cost) -> list[list]:
    """Split ``cases`` into ``world_size`` shards with balanced total cost; shard ``r`` is rank ``r``'s list.

    Greedy longest-processing-time: cases in order of falling cost (suite position breaks ties) go one by one
    to the shard with the smallest total so far (lowest rank breaks ties). Within a shard the cases keep their
    suite order, so consecutive cases of one model still share the model cache. Every case lands in exactly one
    shard; with more ranks than cases the extra shards are empty.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    costs = [float(cost(c)) for c in cases]
    order = sorted(range(len(cases)), key=lambda i: (-costs[i], i))
    loads = [0.0] * world_size
    assigned: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += costs[i]
        assigned[rank].append(i)
    return [[cases[i] for i in sorted(indices)] for indices in assigned]


def shard_loads(shards: Sequence[Sequence], cost=estimated_cost) -> list[float]:
    """The total estimated cost of each shard (GMACs per step, summed over its cases)."""
    return [sum(float(cost(c)) for c in shard) for shard in shards]


@dataclass
class Work:
    """What the ranks of a run measure: DDP units first, then each rank's shard of the remaining cases."""

    ddp_cases: list = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    dropped_sizes: list[int] = field(default_factory=list)
    shards: list[list] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Units of the whole run: one per (DDP case, world size), one per sharded case."""
        return len(self.ddp_cases) * len(self.sizes) + sum(len(s) for s in self.shards)

    def assigned(self, rank: int) -> int:
        """Units rank ``rank`` writes a record for."""
        ddp = len(self.ddp_cases) * sum(1 for k in self.sizes if rank < k)
        return ddp + len(self.shards[rank])


def plan_work(cases: list, strategy: str, world_sizes: list[int] | None, world_size: int) -> Work:
    """Split ``cases`` between DDP units and per-rank shards; the same on every rank."""
    if strategy == "ddp":
        from harness.launch.ddp import world_sizes_for

        train = [c for c in cases if c.mode == "train"]
        rest = [c for c in cases if c.mode != "train"]
        sizes, dropped = world_sizes_for(world_sizes, world_size)
        return Work(train, sizes, dropped, shard_cases(rest, world_size))
    return Work(shards=shard_cases(cases, world_size))
