"""How one DDP rank's failure reaches its peers: the failure board, the reading of a broken collective, and the
GPU sync that stops waiting for a peer that has failed."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from harness.measure import collective
from harness.measure import device as devices
from harness.measure.runner import CaseContext, _peer_failure


def _board(store, rank):
    return collective.FailureBoard(store, "harness/ddp-failure/run/0/case@ws2/0", rank, [0, 1])


def test_a_post_is_read_by_the_peers_and_not_by_its_author():
    store = dist.HashStore()
    mine, theirs = _board(store, 1), _board(store, 0)
    assert theirs.failure(exclude=0) is None
    mine.publish("oom", RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore text"))
    post = theirs.failure(exclude=0)
    assert post == {
        "rank": 1,
        "status": "oom",
        "message": "RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB",
    }
    assert mine.failure(exclude=1) is None


def test_failure_status_names_oom_timeout_and_error():
    assert collective.failure_status(TimeoutError("late")) == "timeout"
    assert collective.failure_status(RuntimeError("CUDA out of memory. Tried to allocate")) == "oom"
    assert collective.failure_status(RuntimeError("shapes differ")) == "error"


def test_a_broken_collective_is_recorded_as_the_failed_peers_outcome(tmp_path):
    store = dist.HashStore()
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", rank=0, ddp_board=_board(store, 0))
    _board(store, 1).publish("oom", "OutOfMemoryError: CUDA out of memory")
    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 60000ms")
    assert _peer_failure(gloo, ctx) == ("oom", "rank 1 failed: OutOfMemoryError: CUDA out of memory")
    # this rank's own failure stays its own, even with a peer's post on the board
    assert _peer_failure(ValueError("bad shape"), ctx) is None
    echo = collective.PeerFailure(1, "timeout", "past the deadline")
    assert _peer_failure(echo, ctx) == ("timeout", "rank 1 failed: past the deadline")


class _NeverDone:
    def record(self):
        pass

    def query(self):
        return False


def test_the_gpu_sync_of_a_ddp_step_stops_when_a_peer_posts(monkeypatch):
    api = devices.FakeCudaApi(count=2)
    monkeypatch.setattr(api, "event", lambda: _NeverDone())  # a step whose collective never completes
    dev = devices.CudaDevice(0, api=api)
    store = dist.HashStore()
    abandoned = []
    monkeypatch.setattr(collective, "abandon", lambda group: abandoned.append(group))
    sync = collective.watched_sync(dev, _board(store, 0), 0, "the-group")
    _board(store, 1).publish("error", "RuntimeError: injected")
    with pytest.raises(collective.PeerFailure, match="rank 1 failed: RuntimeError: injected") as info:
        sync()
    assert info.value.status == "error" and abandoned == ["the-group"]


def test_outside_ddp_the_sync_is_the_devices_own():
    dev = devices.CpuDevice()
    assert collective.watched_sync(dev, None, 0, None) == dev.sync


def test_a_vote_that_a_failed_peer_will_never_join_ends_on_its_post():
    """Two gloo ranks in one process: rank 1 fails after the step's collectives and posts; rank 0, already in the
    next vote, stops there with rank 1's outcome instead of waiting out the group's timeout."""

    import datetime
    import threading

    store = dist.HashStore()
    groups: dict[int, object] = {}

    def join(rank: int) -> None:  # gloo groups connect their ranks when they are made
        groups[rank] = dist.ProcessGroupGloo(store, rank, 2, datetime.timedelta(seconds=600))

    threads = [threading.Thread(target=join, args=(r,), daemon=True) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    board = _board(store, 0)
    _board(store, 1).publish("oom", "OutOfMemoryError: CUDA out of memory in optimizer.step")  # and never votes
    with pytest.raises(collective.PeerFailure, match="rank 1 failed: OutOfMemoryError") as info:
        collective._votes(groups[0], "cpu", True, board=board)
    assert info.value.status == "oom" and board.abandoned is not None
