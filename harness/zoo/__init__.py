"""The ResNet family: one catalog of architectures and stated metadata, the builders made from it, local weights.

``build_model(name)`` is the entry point. The catalog is importable without torch; the builders (in
``harness.zoo.resnet``) import torch and are generated from the catalog's entries.
"""

from __future__ import annotations

from harness.zoo.catalog import CATALOG, MIN_RESOLUTION, MODEL_NAMES, ModelEntry, WeightsEntry, get_entry

__all__ = [
    "CATALOG",
    "MIN_RESOLUTION",
    "MODEL_NAMES",
    "ModelEntry",
    "WeightsEntry",
    "build_model",
    "get_entry",
]


def build_model(name: str, *, weights: str | None = None, impl: str = "harness", **kwargs):
    """Build model ``name`` with random initialisation, or with local ``weights`` (a tag like ``V2`` or a path).

    ``impl="torchvision"`` builds torchvision's own model instead, where torchvision is installed.
    Extra keyword arguments go to the ResNet constructor (``num_classes``, ``zero_init_residual``, ...).
    """
    entry = get_entry(name)  # the clear error for an unknown name, before torch is imported
    verified = False
    if weights and "num_classes" not in kwargs:
        # A fine-tuned checkpoint (say 10 classes) builds a model with its own head, so it loads strictly.
        from harness.zoo.weights import checkpoint_num_classes, resolve_weights, verify_hash

        path, expected = resolve_weights(name, weights)
        verify_hash(path, expected)
        kwargs["num_classes"] = checkpoint_num_classes(path)
        verified = True
    if impl == "torchvision":
        try:
            import torchvision.models as tvm
        except Exception as exc:
            from harness.errors import HarnessError

            raise HarnessError(
                f"impl: torchvision needs torchvision importable here ({exc}); use impl: harness"
            ) from None
        model = getattr(tvm, name)(weights=None, **kwargs)
    elif impl == "harness":
        from harness.zoo.resnet import builder

        model = builder(entry)(**kwargs)
    else:
        from harness.errors import HarnessError

        raise HarnessError(f"unknown impl {impl!r}; valid: harness, torchvision")
    if weights:
        from harness.zoo.weights import load_weights

        load_weights(model, name, weights, check_hash=not verified)
    return model
