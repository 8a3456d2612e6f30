"""Sharding a sweep across ranks: every case exactly once, balanced by cost, the same on every rank."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from harness.launch.sharding import estimated_cost, shard_cases, shard_loads


@dataclass(frozen=True)
class StubCase:
    model: str
    mode: str
    batch_size: int
    resolution: int = 224

    @property
    def id(self) -> str:
        return f"{self.model}/{self.mode}/bs{self.batch_size}/r{self.resolution}"


def matrix() -> list[StubCase]:
    models = ["resnet18", "resnet50", "wide_resnet101_2", "resnext50_32x4d"]
    return [
        StubCase(m, mode, bs, res)
        for m, mode, bs, res in itertools.product(models, ["inference", "train"], [1, 8, 32], [64, 224])
    ]


def ids(shards) -> list[str]:
    return [c.id for shard in shards for c in shard]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_every_case_lands_in_exactly_one_shard(world_size):
    cases = matrix()
    shards = shard_cases(cases, world_size)
    assert len(shards) == world_size
    assert sorted(ids(shards)) == sorted(c.id for c in cases)


def test_cost_follows_gmacs_resolution_batch_and_mode():
    base = estimated_cost(StubCase("resnet50", "inference", 1, 224))
    assert base == pytest.approx(4.089, rel=1e-3)
    assert estimated_cost(StubCase("resnet50", "inference", 8, 224)) == pytest.approx(8 * base)
    assert estimated_cost(StubCase("resnet50", "train", 1, 224)) == pytest.approx(3 * base)
    assert estimated_cost(StubCase("resnet50", "inference", 1, 112)) == pytest.approx(base / 4)
    assert estimated_cost(StubCase("not_in_catalog", "inference", 1, 224)) > 0


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_are_balanced(world_size):
    cases = matrix()
    loads = shard_loads(shard_cases(cases, world_size))
    biggest = max(estimated_cost(c) for c in cases)
    # Greedy LPT: no shard exceeds the mean by more than the single largest case.
    assert max(loads) - sum(loads) / world_size <= biggest
    # And it is far better than a round-robin split of the same list.
    round_robin = shard_loads([cases[r::world_size] for r in range(world_size)])
    assert max(loads) <= max(round_robin)


def test_one_heavy_case_gets_a_rank_to_itself():
    heavy = StubCase("wide_resnet101_2", "train", 64)
    light = [StubCase("resnet18", "inference", 1, 64) for _ in range(1)] + [
        StubCase("resnet18", "inference", bs, 64) for bs in (2, 3, 4, 5)
    ]
    shards = shard_cases([*light, heavy], 2)
    assert [heavy] in shards
    assert sorted(len(s) for s in shards) == [1, 5]


def test_deterministic_whatever_the_process():
    cases = matrix()
    first = [[c.id for c in s] for s in shard_cases(cases, 3)]
    for _ in range(5):
        assert [[c.id for c in s] for s in shard_cases(list(cases), 3)] == first


def test_shards_keep_suite_order_for_the_model_cache():
    cases = matrix()
    position = {c.id: i for i, c in enumerate(cases)}
    for shard in shard_cases(cases, 3):
        indices = [position[c.id] for c in shard]
        assert indices == sorted(indices)


def test_equal_costs_spread_evenly():
    cases = [StubCase("resnet18", "inference", 2, 32 + i) for i in range(6)]
    same = [StubCase("resnet18", "inference", 2, 32) for _ in range(6)]
    assert sorted(len(s) for s in shard_cases(same, 3)) == [2, 2, 2]
    assert sorted(len(s) for s in shard_cases(cases, 2)) == [3, 3]


def test_more_ranks_than_cases_leaves_idle_ranks_empty():
    cases = matrix()[:3]
    shards = shard_cases(cases, 5)
    assert sum(1 for s in shards if not s) == 2
    assert sorted(ids(shards)) == sorted(c.id for c in cases)
    assert shard_cases([], 4) == [[], [], [], []]


def test_random_suites_keep_the_invariants():
    rng = random.Random(7)
    pool = matrix()
    for _ in range(50):
        cases = rng.sample(pool, rng.randint(1, len(pool)))
        world = rng.randint(1, 6)
        shards = shard_cases(cases, world)
        assert sorted(ids(shards)) == sorted(c.id for c in cases)
        assert shards == shard_cases(cases, world)


def test_bad_world_size_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        shard_cases(matrix(), 0)
