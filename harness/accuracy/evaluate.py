"""Top-1/top-5 accuracy of local weights on a local ImageNet-style folder, beside the stated acc@1/acc@5.

``evaluate`` answers two questions a benchmark user has: are these the published weights (their accuracy
matches the stated one within the measurement's interval), and did a precision or memory-format change cost
accuracy. Weights come only from local files through ``harness.zoo.build_model`` (hash-checked, strict).
``accuracy_for_case`` is the same measurement for one case of a suite, returned as data rather than raised.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from statistics import NormalDist

from harness.accuracy.dataset import ImageDataset, collate, find_samples
from harness.accuracy.preprocess import Recipe
from harness.errors import HarnessError
from harness.zoo.weights import checkpoint_num_classes

PRECISIONS = ("fp32", "tf32", "amp_fp16", "amp_bf16")
#: Keys of the dict ``accuracy_for_case`` stores in a record's ``accuracy`` field (or ``{"error": ...}``).
ACCURACY_FIELDS = (
    "acc1",
    "acc5",
    "acc1_ci95",
    "acc5_ci95",
    "stated_acc1",
    "stated_acc5",
    "acc1_delta",
    "acc5_delta",
    "acc1_stated_in_ci95",
    "acc5_stated_in_ci95",
    "images",
    "skipped",
    "skipped_files",
    "total_images",
    "limit",
    "weights_tag",
    "recipe",
    "duration_s",
)
SKIPPED_LISTED = 10
NO_WEIGHTS = "no weights: accuracy needs a checkpoint (set weights: V1|V2|path in the suite)"


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1] (``(0.0, 1.0)`` when n is 0).

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0% and 100%, which small
    ``--limit`` subsets and tiny test sets produce.
    """
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``; a CUDA device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"device {device!r}: no CUDA device is visible here; use --device cpu or auto")
    if not (device == "cpu" or device.startswith("cuda")):
        raise HarnessError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return device


def check_precision(precision: str, device: str) -> None:
    """Refuse a precision the device cannot run, with the reason (the same rules as the benchmark runner)."""
    if precision not in PRECISIONS:
        raise HarnessError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    from harness.measure import device as devices

    reason = devices.get(device).unsupported_reason(precision)
    if reason:
        raise HarnessError(reason)


def identify_weights(model_name: str, weights: str):
    """The checkpoint's path, its catalog entry (or None) and how that entry was found.

    The file's sha256 is checked against the prefix its tag or name promises before anything else reads it. A
    tag names its entry; a path matches an entry by file name, else by its sha256 prefix; an unknown checkpoint
    gets no entry (and so no stated accuracy) and is evaluated with the recipe of the model's best entry.
    """
    from harness.zoo import get_entry
    from harness.zoo.weights import resolve_weights, verify_hash

    entry = get_entry(model_name)
    path, expected = resolve_weights(model_name, weights)
    digest = verify_hash(path, expected)
    if re.fullmatch(r"(IMAGENET1K_)?V\d", weights):
        match = entry.weights_entry(weights)
        return path, match, f"{match.tag} (named by tag)"
    for w in entry.weights:
        if w.file_name == path.name:
            return path, w, f"{w.tag} (matched by file name)"
    for w in entry.weights:
        if digest.startswith(w.sha256_prefix):
            return path, w, f"{w.tag} (matched by sha256 prefix {w.sha256_prefix})"
    best = entry.best_weights
    why = f"{path.name} is not a published {model_name} checkpoint"
    return path, None, f"{best.tag}, the model's best entry ({why})"


def _check_labels(samples, num_classes: int, model_name: str, data_dir: str) -> None:
    if samples.num_classes is not None and samples.num_classes != num_classes:
        names = samples.classes
        shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]} ... {names[-1]}"
        raise HarnessError(
            f"data folder {data_dir!r} has {samples.num_classes} class folders ({shown}) but {model_name}'s fc has "
            f"{num_classes} outputs: the folder must hold the model's {num_classes} classes, one sub-folder each "
            "(sorted names give the class index), or use --labels FILE to map images to class indices"
        )
    bad = [(p, label) for p, label in samples.items if not 0 <= label < num_classes]
    if bad:
        raise HarnessError(
            f"{samples.source}: {len(bad)} labels outside 0..{num_classes - 1} ({model_name} has {num_classes} "
            f"outputs), first: {bad[0][0]} -> {bad[0][1]}"
        )


def _subset(items: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(items):
        return items
    import torch

    if limit < 1:
        raise HarnessError(f"--limit must be a positive number of images, got {limit}")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(items), generator=generator)[:limit].sort().values.tolist()
    return [items[i] for i in chosen]


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=True,
    )


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def default_workers() -> int:
    """Data-loading worker processes: one per available core but one, at most 8 (0 on a single core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1))


def evaluate(
    model_name: str,
    weights: str,
    data_dir: str | os.PathLike,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
    limit: int | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "auto",
    seed: int = 0,
    labels_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Top-1 and top-5 accuracy (percent) of ``model_name`` with local ``weights`` on the images in ``data_dir``.

    ``weights`` is a tag (V1, V2) found under ``$TORCH_HOME/hub/checkpoints`` or a checkpoint path; the
    preprocessing recipe is that of the matching catalog entry (for an unknown checkpoint, the model's best
    entry, and no stated accuracy). ``limit`` evaluates a random subset of that many images drawn with
    ``seed``. Returns a dict with the accuracies, their 95% Wilson intervals, the stated values and the
    differences in percentage points, the images evaluated and the files skipped (with reasons), what was found
    but left out (``ignored_files``, a count of non-image files with a few ``ignored_examples``, and
    ``empty_classes``, class folders without images; also as warnings and as lines in ``notes``), and
    ``duration_s``, the wall-clock seconds of the evaluation pass. Bad input raises a HarnessError.
    """
    from harness.zoo import build_model, get_entry

    entry_of_model = get_entry(model_name)
    weights = os.fspath(weights) if weights else weights
    if not weights:
        raise HarnessError("accuracy needs weights: pass --weights V1, V2 or a checkpoint path")
    if batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {batch_size}")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise HarnessError(f"--workers must be 0 (load in this process) or more, got {workers}")
    if precision not in PRECISIONS:
        raise HarnessError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    samples = find_samples(data_dir, labels_file)
    dev = resolve_device(device)
    check_precision(precision, dev)
    path, entry, recipe_from = identify_weights(model_name, weights)
    recipe_entry = entry or entry_of_model.best_weights
    recipe = Recipe(recipe_entry.resize_size, recipe_entry.crop_size)
    num_classes = checkpoint_num_classes(path)
    _check_labels(samples, num_classes, model_name, str(data_dir))
    chosen = _subset(samples.items, limit, seed)
    model = build_model(model_name, weights=weights, num_classes=num_classes)
    # Said once the input is known to be usable (bad input stays one line) and before the pass, which may be long;
    # the CLI prints these as warnings.
    for note in samples.notes():
        warnings.warn(f"{data_dir}: {note}", stacklevel=2)
    measured = _run(model, chosen, samples, recipe, dev, precision, channels_last, batch_size, workers, progress)
    result = {
        "model": model_name,
        "weights_tag": entry.tag if entry else None,
        "weights_path": str(path),
        "recipe": recipe.as_dict(),
        "recipe_from": recipe_from,
        "data": str(data_dir),
        "labels_file": str(labels_file) if labels_file else None,
        "num_classes": num_classes,
        "total_images": len(samples.items),
        "ignored_files": samples.ignored,
        "ignored_examples": list(samples.ignored_examples),
        "empty_classes": list(samples.empty_classes),
        "notes": samples.notes(),
        "limit": limit,
        "seed": seed,
        "subset": len(chosen) < len(samples.items),
        "selected": len(chosen),
        "precision": precision,
        "channels_last": channels_last,
        "device": dev,
        "batch_size": batch_size,
        **measured,
    }
    return result | against_stated(result["acc1"], result["acc5"], result["acc1_ci95"], result["acc5_ci95"], entry)


def _run(model, chosen, samples, recipe, dev, precision, channels_last, batch_size, workers, progress) -> dict:
    """The evaluation pass: counts of top-1 and top-5 hits over the readable images, and what was skipped."""
    import torch
    from torch.utils.data import DataLoader

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(dev, memory_format=fmt)
    loader = DataLoader(
        ImageDataset(chosen, recipe),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=dev.startswith("cuda"),
    )
    amp = {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)
    topk = min(5, model.fc.out_features)
    hits1 = hits5 = seen = 0
    skipped = [(p, "listed in the labels file but not found") for p in samples.missing]
    saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    # TF32 only when asked: an "fp32" accuracy measured with TF32 on would be mislabelled.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    start = time.perf_counter()
    try:
        with _progress(progress) as bar, torch.inference_mode():
            task = bar.add_task("eval", total=len(chosen))
            for images, labels, bad in loader:
                skipped.extend((s.path, s.reason) for s in bad)
                if images is not None:
                    x = images.to(dev, non_blocking=True).contiguous(memory_format=fmt)
                    y = labels.to(dev, non_blocking=True)
                    with torch.autocast(dev.split(":")[0], dtype=amp, enabled=amp is not None):
                        logits = model(x)
                    hits = logits.float().topk(topk, dim=1).indices.eq(y[:, None])
                    hits1 += int(hits[:, 0].sum())
                    hits5 += int(hits.any(dim=1).sum())
                    seen += len(y)
                bar.advance(task, len(bad) + (0 if images is None else len(images)))
        if dev.startswith("cuda"):
            torch.cuda.synchronize(dev)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32
    duration = time.perf_counter() - start
    if seen == 0:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise HarnessError(f"none of the {len(chosen)} images could be read ({len(skipped)} skipped{first})")
    ci1, ci5 = wilson_interval(hits1, seen), wilson_interval(hits5, seen)
    return {
        "images": seen,
        "skipped": len(skipped),
        "skipped_files": [{"path": p, "reason": r} for p, r in skipped[:SKIPPED_LISTED]],
        "acc1": _pct(hits1 / seen),
        "acc5": _pct(hits5 / seen),
        "acc1_ci95": [_pct(ci1[0]), _pct(ci1[1])],
        "acc5_ci95": [_pct(ci5[0]), _pct(ci5[1])],
        "topk": topk,
        "duration_s": round(duration, 3),
    }


def against_stated(acc1: float, acc5: float, ci1: list, ci5: list, entry) -> dict:
    """Stated acc@1/acc@5 of the weights entry, the measured minus stated difference in percentage points, and
    whether each stated value lies inside the measured 95% interval (all None for a checkpoint not in the catalog).
    """
    if entry is None:
        return dict.fromkeys(
            ("stated_acc1", "stated_acc5", "acc1_delta", "acc5_delta", "acc1_stated_in_ci95", "acc5_stated_in_ci95")
        )
    return {
        "stated_acc1": entry.acc1,
        "stated_acc5": entry.acc5,
        "acc1_delta": round(acc1 - entry.acc1, 4),
        "acc5_delta": round(acc5 - entry.acc5, 4),
        "acc1_stated_in_ci95": ci1[0] <= entry.acc1 <= ci1[1],
        "acc5_stated_in_ci95": ci5[0] <= entry.acc5 <= ci5[1],
    }


#: Smallest batch for a suite case's accuracy pass: a batch-1 case would make a 50,000-image pass needlessly
#: slow, and in eval mode the predictions do not depend on the batch beyond kernel rounding.
MIN_CASE_BATCH = 32
_case_results: dict[tuple, dict] = {}


def accuracy_for_case(case, data_dir: str | os.PathLike, limit: int | None, *, device: str | None = None) -> dict:
    """The ``accuracy`` field of a suite case's record: measured and stated acc@1/acc@5, intervals, differences.

    ``case`` needs ``.model``, ``.weights``, ``.precision``, ``.channels_last``, ``.device`` and ``.batch_size``;
    ``device`` overrides ``case.device`` (a rank's own device). Failures are data: a case without weights, or an
    evaluation that fails, returns ``{"error": message}`` instead of raising. Accuracy depends on the weights,
    precision and memory format, not on the mode or batch size, so cases that share those reuse one pass.
    """
    weights = getattr(case, "weights", None)
    if not weights:
        return {"error": NO_WEIGHTS}
    dev = device or getattr(case, "device", None) or "auto"
    key = (case.model, str(weights), case.precision, bool(case.channels_last), dev, str(data_dir), limit)
    if key not in _case_results:
        try:
            result = evaluate(
                case.model,
                str(weights),
                data_dir,
                precision=case.precision,
                channels_last=bool(case.channels_last),
                limit=limit,
                batch_size=max(int(getattr(case, "batch_size", None) or 1), MIN_CASE_BATCH),
                device=dev,
                seed=0,
                progress=False,
            )
            _case_results[key] = {name: result[name] for name in ACCURACY_FIELDS}
        except HarnessError as exc:
            _case_results[key] = {"error": str(exc)}
        except Exception as exc:  # an OOM or a driver error in the accuracy pass must not lose the case's timing
            _case_results[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return dict(_case_results[key])
