"""Accuracy of local weights on a local ImageNet-style folder, beside the stated acc@1/acc@5.

``evaluate(...)`` is the measurement behind ``harness eval``; ``accuracy_for_case(case, data, limit)`` fills a
suite record's ``accuracy`` field. Importing this package imports no torch.
"""

from __future__ import annotations

from harness.accuracy.evaluate import ACCURACY_FIELDS, accuracy_for_case, evaluate, wilson_interval
from harness.accuracy.preprocess import IMAGENET_MEAN, IMAGENET_STD, Recipe

__all__ = [
    "ACCURACY_FIELDS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Recipe",
    "accuracy_for_case",
    "evaluate",
    "wilson_interval",
]
