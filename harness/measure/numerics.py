"""How far a reduced-precision case's outputs are from fp32 on the same input: top-1 agreement and relative error.

``compare_with_fp32(model, x, precision, device)`` runs the model twice on ``x`` under ``inference_mode``, once in
strict fp32 (TF32 off) and once as the case runs (autocast fp16/bf16 for amp cases, TF32 allowed for tf32), and
compares the logits. Both runs use eval mode, so batch-norm running statistics are neither used from the batch
nor updated: the comparison leaves the model as it found it, training flag and numerics flags included.

Definitions, per batch:
- ``top1_agreement``: the fraction of rows whose argmax is the same in both runs, in [0, 1].
- ``max_rel_err``: max |a - b| over every logit, divided by (max |a| + 1e-12), where a is the fp32 output and b
  the case's. Dividing by the largest fp32 magnitude rather than element by element keeps logits near zero from
  inflating the figure; it reads as "the worst error, as a fraction of the output's scale".

A case whose output holds NaN or Inf raises ``NumericsError``: the runner records the case as failed with the
message, since its throughput was measured on garbage.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from harness.errors import HarnessError
from harness.store.record import NUMERICS_FIELDS, PRECISIONS

EPS = 1e-12


class NumericsError(RuntimeError):
    """A case's output (or its fp32 reference) holds NaN or Inf; the case fails, the suite goes on."""


@contextmanager
def _numerics_flags(tf32: bool):
    """Set TF32 for matmul and cuDNN convolutions, restoring the caller's flags afterwards."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def _eval(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _forward(model, x, precision: str, device_type: str):
    import torch

    with torch.inference_mode():
        if precision in ("amp_fp16", "amp_bf16"):
            dtype = torch.float16 if precision == "amp_fp16" else torch.bfloat16
            with _numerics_flags(tf32=False), torch.autocast(device_type=device_type, dtype=dtype):
                out = model(x)
        else:
            with _numerics_flags(tf32=precision == "tf32"):
                out = model(x)
    return out.float().reshape(out.shape[0], -1)


def _check_finite(out, what: str) -> None:
    import torch

    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        nan, inf = int(torch.isnan(out).sum()), int(torch.isinf(out).sum())
        raise NumericsError(
            f"{what} has {nan} NaN and {inf} Inf value(s) among {out.numel()} outputs; "
            "its measurements are not meaningful (try another precision, or bf16 instead of fp16)"
        )


#: (input, fp32 output) pairs that ``compare_with_fp32`` may reuse, set for one call by ``reusing``.
_REFERENCES: ContextVar[list | None] = ContextVar("fp32_references", default=None)


@contextmanager
def reusing(references: list | None):
    """Within the block, ``compare_with_fp32`` reuses (and adds to) ``references``: (input, fp32 output) pairs of
    the model in the state it is compared in (the model cache's, for the model's initial state)."""
    token = _REFERENCES.set(references)
    try:
        yield
    finally:
        _REFERENCES.reset(token)


def compare_with_fp32(model, x, precision: str, device, channels_last: bool = False) -> dict[str, Any]:
    """Top-1 agreement (fraction in [0, 1]) and max relative error of ``precision`` against fp32 on input ``x``.

    ``model`` and ``x`` are already on ``device`` ("cpu", "cuda", "cuda:N"), the model in fp32 weights; with
    ``channels_last`` the input is laid out NHWC for both runs. Returns the keys of ``NUMERICS_FIELDS``, both None
    for fp32 cases. Raises ``NumericsError`` when either output holds NaN or Inf, and ``HarnessError`` for an
    unknown precision.

    Inside ``reusing(references)``, an input already among the references reuses its fp32 output instead of
    running fp32 again, and a new one is added.
    """
    if precision not in PRECISIONS:
        raise HarnessError(f"unknown precision {precision!r} for the numerics check; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return {name: None for name in NUMERICS_FIELDS}
    import torch

    from harness.measure import device as devices

    device_type = (devices.get(device) if isinstance(device, str) else device).autocast_type
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    references = _REFERENCES.get()
    with _eval(model):
        reference = _known(references, x)
        if reference is None:
            reference = _forward(model, x, "fp32", device_type)
            _check_finite(reference, "the fp32 reference output")
            if references is not None:
                references.append((x.detach().clone(memory_format=torch.preserve_format), reference))
        candidate = _forward(model, x, precision, device_type)
        _check_finite(candidate, f"the {precision} output")
    agreement = (reference.argmax(dim=1) == candidate.argmax(dim=1)).double().mean().item()
    scale = reference.abs().max().item() + EPS
    max_rel_err = (reference - candidate).abs().max().item() / scale
    return {"top1_agreement": float(agreement), "max_rel_err": float(max_rel_err)}


def _known(references: list | None, x):
    """The fp32 output ``references`` holds for exactly ``x`` (values, shape, dtype, device and layout), or None."""
    import torch

    for seen, output in references or ():
        same_layout = seen.stride() == x.stride() and seen.device == x.device and seen.dtype == x.dtype
        if same_layout and seen.shape == x.shape and torch.equal(seen, x):
            return output
    return None


#: BatchNorm calibration of randomly initialised models: passes of synthetic images, images per pass, largest size.
CALIBRATION_PASSES = 2
CALIBRATION_BATCH = 8
CALIBRATION_MAX_RESOLUTION = 128


def calibrate_batchnorm(model, device, resolution: int, seed: int = 0) -> int:
    """Give a randomly initialised model's BatchNorm layers the running statistics of its own activations.

    Fresh BatchNorm layers hold mean 0 and variance 1, so in eval mode they normalise nothing and each residual
    block adds its unnormalised output to the next: activations grow block after block (3.6e5 at 224 px in
    resnet101, 3e7 in resnet152), past fp16's largest value, and an amp_fp16 output turns into Inf and NaN. A few
    forward passes in train mode over synthetic images (``CALIBRATION_PASSES`` of ``CALIBRATION_BATCH``, at the
    case's resolution up to ``CALIBRATION_MAX_RESOLUTION`` px), with a cumulative average (momentum None), set
    the statistics to those the layers see; then eval-mode activations stay normalised, as with trained weights.
    Parameters are untouched, and each layer's momentum and the model's training flag are restored. Loaded
    weights carry their own statistics and need no calibration. Returns the number of layers calibrated.
    """
    import torch

    from harness.measure.scenarios import synthetic_batch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    saved = [(m, m.momentum) for m in layers]
    was_training = model.training
    size = max(32, min(int(resolution), CALIBRATION_MAX_RESOLUTION))
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the calibration passes
        model.train()
        with torch.no_grad():
            for i in range(CALIBRATION_PASSES):
                x, _ = synthetic_batch(CALIBRATION_BATCH, size, device, False, seed=seed + 7919 * (i + 1))
                model(x)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    return len(layers)
