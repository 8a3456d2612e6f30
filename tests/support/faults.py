"""Phase hooks that the tests install into the harness processes they start: fault injection, DDP replica checksums.

``install_from_env()`` reads the switches below from the environment and adds the hooks they ask for to
``harness.measure.phases.PHASE_HOOKS``. ``tests/support/inject/sitecustomize.py`` calls it when a Python process
starts with that folder on its PYTHONPATH (``tests.distributed.common.env`` puts it there), so the torchrun workers
that ``harness run`` starts carry the hooks too; the harness itself has no test switch.

- ``HARNESS_TEST_FAIL=<case id glob>@<rank>:<phase>:<kind>``: that rank fails a DDP case at ``phase`` (``trial``:
  just before the trial step of the bare model, ahead of any collective; ``step<N>``: in the N-th step of the
  warm-up and timed window, counted from 1) with ``kind`` (``oom`` or ``error``, the default). It checks how one
  rank's failure reaches the others.
- ``HARNESS_DDP_CHECKSUM=1``: just after each DDP timed window, every rank appends the digests of its parameters
  and inputs to ``checksums-rank<N>.jsonl`` (``collective.write_checksum``): with different inputs per rank, equal
  parameter digests show that the gradients were averaged across the group.
"""

from __future__ import annotations

import fnmatch
import os

FAIL_ENV = "HARNESS_TEST_FAIL"
CHECKSUM_ENV = "HARNESS_DDP_CHECKSUM"


def inject(phase: str, kind: str) -> None:
    """Raise the failure ``kind`` (``oom`` or ``error``) as if it happened at ``phase``."""
    import torch

    if kind == "oom":
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB (injected at {phase})")
    raise RuntimeError(f"injected failure at {phase}")


class FaultInjector:
    """The phase hook of a ``HARNESS_TEST_FAIL`` spec (see the module docstring)."""

    def __init__(self, spec: str) -> None:
        self.target, _, rest = spec.partition("@")
        rank, _, rest = rest.partition(":")
        self.rank = int(rank) if rank.isdigit() else None
        self.where, _, kind = rest.partition(":")
        self.kind = kind or "error"

    def __call__(self, phase: str, run) -> None:
        if not run.timing.ddp or run.ctx.rank != self.rank or not fnmatch.fnmatchcase(run.case.id, self.target):
            return
        if phase == "trial" and self.where == "trial":
            inject("trial", self.kind)
        elif phase == "warmup" and self.where.startswith("step"):
            run.step = self._counted(run.step)

    def _counted(self, step):
        count = 0

        def counted():
            nonlocal count
            count += 1
            if self.where == f"step{count}":
                inject(self.where, self.kind)
            return step()

        return counted


def write_checksum(phase: str, run) -> None:
    """The phase hook of ``HARNESS_DDP_CHECKSUM``: this rank's digests, just after a DDP case's timed window."""
    if phase != "record" or not run.timing.ddp:
        return
    from harness.measure.collective import write_checksum as append

    append(run.ctx.run_dir, run.case, run.ctx, run.model, run.inputs, len(run.samples))


def install_from_env() -> None:
    """Add the hooks that the environment asks for to the harness's phase hooks (each at most once)."""
    spec = os.environ.get(FAIL_ENV, "")
    checksum = os.environ.get(CHECKSUM_ENV, "") not in ("", "0")
    if not spec and not checksum:
        return
    from harness.measure.phases import PHASE_HOOKS

    if spec and not any(isinstance(h, FaultInjector) for h in PHASE_HOOKS):
        PHASE_HOOKS.append(FaultInjector(spec))
    if checksum and write_checksum not in PHASE_HOOKS:
        PHASE_HOOKS.append(write_checksum)
