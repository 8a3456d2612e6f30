"""The bounds on what a suite may ask for, each with its reason. Pure data: imports nothing heavy.

``harness schema`` states them (JSON Schema ``maximum`` and descriptions), error messages quote them, and
docs/suites.md explains them. Measured with ``saved_tensors_hooks`` on the meta device (fp32 training step, the
activations kept for backward):

- resolution: one training image of resnext101_32x8d keeps about 20 GiB of activations at 2048 px and about
  77 GiB at 4096 px, which with weights, gradients and workspace is past an 80 GB device. 2048 px (84 times the
  pixels of 224) is the largest side every model of the zoo can train on, one image at a time.
- batch_size: training resnet18, the smallest model, at the smallest input (32 px) keeps about 28 GiB of
  activations at batch 65,536 (resnet50: about 108 GiB). No device holds much more, and a batch of 2**16
  images per device is far beyond any published ResNet recipe.
- case count: 10,000 cases at a few seconds each is a day of measuring; 100,000 is weeks, and expanding the
  matrix alone then takes seconds and hundreds of MB. ``--max-cases N`` lifts the hard cap.
- aliases: a YAML alias (``*name``) repeats a whole value without writing it again, so nine levels of nine
  aliases in a few hundred bytes stand for 387 million values. Aliases may add at most 1,000,000 values.
"""

from __future__ import annotations

#: Largest square input side, in pixels (reason above).
MAX_RESOLUTION = 2048
MAX_RESOLUTION_WHY = (
    "the largest input side every model can train on one image of: resnext101_32x8d keeps about 20 GiB of "
    "activations at 2048 px and about 77 GiB at 4096 px"
)
#: Largest batch size per device (reason above).
MAX_BATCH_SIZE = 65_536
MAX_BATCH_SIZE_WHY = (
    "the largest batch per device: training resnet18 at the smallest input (32 px) already keeps about 28 GiB of "
    "activations at batch 65,536"
)
#: Longest duration a suite may give (warmup.max_seconds, measure.min_seconds, timeout_s): one week. No case
#: needs more, and a larger number is a typo (or an overflow in waiting).
MAX_SECONDS = 604_800
#: Most steps in one warm-up or one timed repeat (min_iters, max_iters, window): 10 million steps at 1 ms is
#: close to three hours of one case.
MAX_STEPS = 10_000_000
#: Most repeats of the timed phase.
MAX_REPEATS = 1_000
#: Largest seed: 32 bits, which every generator takes (numpy's legacy seeding refuses more).
MAX_SEED = 2**32 - 1
#: Largest process count: per node, nodes, and each DDP world size.
MAX_WORLD_SIZE = 65_536
#: Most restarts of a crashed worker group.
MAX_RESTARTS = 1_000
#: Most images an accuracy check may evaluate.
MAX_ACCURACY_IMAGES = 1_000_000_000
#: Above this many cases, validate and run warn (with the count) but go on.
WARN_CASES = 10_000
#: Above this many cases (matrix combinations before exclude, plus include entries), a suite is refused unless
#: ``--max-cases N`` lifts the cap.
MAX_CASES = 100_000
#: Values (YAML nodes) that aliases may add to a suite file beyond those written in it.
MAX_ALIAS_VALUES = 1_000_000
#: Problems listed in one error; the rest are counted ("and N more").
MAX_LISTED_PROBLEMS = 20

BOUNDS_TEXT = (
    f"Bounds: resolution <= {MAX_RESOLUTION}, batch_size <= {MAX_BATCH_SIZE}; every duration and fraction a finite "
    f"number (no .inf or .nan), durations at most {MAX_SECONDS} s (a week); above {WARN_CASES:,} cases a warning, "
    f"above {MAX_CASES:,} a refusal that --max-cases N lifts; YAML aliases may add at most {MAX_ALIAS_VALUES:,} "
    f"values; step counts at most {MAX_STEPS}, repeats at most {MAX_REPEATS}, seed at most {MAX_SEED}."
)
