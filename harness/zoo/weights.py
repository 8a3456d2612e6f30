"""Local weights: find a checkpoint on disk, check its sha256 prefix, load it with ``weights_only=True``.

Nothing here touches the network. A checkpoint is looked for at an explicit path, or under
``$TORCH_HOME/hub/checkpoints/`` by the file name the catalog states (torchvision's download cache, so weights
fetched once by torchvision on any machine can be copied here). Files follow torchvision's naming,
``<model>-<first 8 hex digits of sha256>.pth``, and the digits are checked before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from harness.errors import WeightsError
from harness.zoo.catalog import CATALOG, get_entry

# torchvision's form only: the last ``-<hex>`` right before the extension, at least 8 digits, so names such as
# ``resnet18-epoch-100000.pth`` are not taken for a hash prefix.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[^.]+$")
# How torch's weights_only unpickler words a refusal of something that is not a tensor, across versions: a global
# that is not on its allow-list, a global from a blocked module (os, posix, sys, nt in recent torch, 2.13 here), and a
# call or object build on something it does not know. Group 1 names the global (or the object) when torch says.
_UNSAFE = (
    re.compile(r"Unsupported global: GLOBAL ([^\s]+)"),
    re.compile(r"unsupported GLOBAL ([^\s]+) whose module ([^\s]+) is blocked"),
    re.compile(r"Trying to call reduce for unrecognized function ([^\n]+)"),
    re.compile(r"Can only (?:create new object|build)[^\n]*? but got ([^\n]+)"),
)
_BLOCKED = re.compile(r"unsupported GLOBAL [^\s]+ whose module [^\s]+ is blocked")
#: Modules and builtins whose globals in a pickle can only mean running code (older torch words their refusal like any
#: other global's; recent torch blocks the first four outright). Builtins appear without a module in torch's message.
_CODE_MODULES = {"sys", "os", "posix", "nt", "subprocess", "builtins", "runpy", "importlib", "pty", "shutil", "socket"}
_CODE_MODULES |= {"pickle", "_pickle", "marshal", "types", "code", "codeop", "ctypes", "webbrowser", "multiprocessing"}
_CODE_BUILTINS = {"eval", "exec", "compile", "getattr", "setattr", "__import__", "open", "breakpoint", "input"}


def _runs_code(name: str) -> bool:
    module = name.split(".", 1)[0] if "." in name else None
    return module in _CODE_MODULES if module else name in _CODE_BUILTINS


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (torch.hub's own rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "torch"


def checkpoint_dir() -> Path:
    """Where torchvision caches downloaded checkpoints: ``<torch home>/hub/checkpoints``."""
    return torch_home() / "hub" / "checkpoints"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(model: str, weights: str) -> tuple[Path, str | None]:
    """Turn ``weights`` (a tag such as ``V2``/``IMAGENET1K_V1``, or a file path) into a path and its expected hash.

    A tag resolves to the catalog's file name under the checkpoint folder and the catalog's hash prefix; a path
    is used as given, with the hash prefix read from its name when it follows the ``name-<hash>.pth`` pattern.
    """
    entry = get_entry(model)
    if re.fullmatch(r"(IMAGENET1K_)?V\d", weights):
        expected = entry.weights_entry(weights)
        path = checkpoint_dir() / expected.file_name
        if not path.is_file():
            raise WeightsError(
                f"no local weights for {model} {expected.tag}: looked for {path}. Copy the checkpoint "
                f"{expected.file_name!r} there (torchvision's cache layout), set TORCH_HOME to the folder that "
                f"holds hub/checkpoints/, or pass the file's path instead of {weights!r}"
            )
        return path, expected.sha256_prefix
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} does not exist; pass a checkpoint's path or a weights tag "
            f"({', '.join(e.tag for e in entry.weights)})"
        )
    match = _HASH_IN_NAME.search(path.name)
    return path, match.group(1) if match else None


def verify_hash(path: Path, expected_prefix: str | None) -> str:
    """Check the file's sha256 against ``expected_prefix``; return the full digest. Raises on a mismatch."""
    digest = sha256_file(path)
    if expected_prefix and not digest.startswith(expected_prefix):
        message = (
            f"refusing {path}: its sha256 is {digest} but its name promises a hash starting {expected_prefix}. "
            "The file is corrupt, truncated or not the published checkpoint; fetch it again"
        )
        if path.name not in _catalog_file_names():
            message += f" (if these digits are not a hash prefix, rename the file so -{expected_prefix} is not in it)"
        raise WeightsError(message)
    return digest


def _catalog_file_names() -> set[str]:
    return {w.file_name for entry in CATALOG.values() for w in entry.weights}


def _unreadable(path: Path, exc: Exception, model_name: str) -> WeightsError:
    """The error for a file torch cannot load: what the file is not, plus torch's reason only when it helps."""
    import pickle

    text = str(exc) if isinstance(exc, pickle.UnpicklingError) else ""
    unsafe = next((m for m in (pattern.search(text) for pattern in _UNSAFE) if m), None)
    if unsafe:
        what = unsafe.group(1).strip().rstrip(".")[:120]
        if _BLOCKED.search(text) or _runs_code(what):
            return WeightsError(
                f"refused {path} unloaded: it holds code, not only tensors (it refers to {what}, which no checkpoint "
                "needs), and the safe load (weights_only=True) stopped before running any of it. Do not load this "
                f"file with weights_only=False; use a {model_name} state_dict saved with torch.save from a trusted "
                "source"
            )
        return WeightsError(
            f"refused {path} unloaded: besides tensors it holds Python code or objects ({what}), which the safe "
            f"load (weights_only=True) does not run. Save the {model_name}'s state_dict() with torch.save (tensors "
            "only) and pass that file"
        )
    what = "is empty" if path.stat().st_size == 0 else "is truncated or is not one"
    return WeightsError(
        f"{path} is not a PyTorch checkpoint (a file written by torch.save): torch cannot read it, so it {what}. "
        f"Pass a {model_name} state_dict saved with torch.save (a .pth file)"
    )


def checkpoint_num_classes(path: Path) -> int:
    """Rows of the checkpoint's ``fc.weight`` (its class count); 1000 when it cannot be read cheaply.

    Reads with ``mmap`` and ``weights_only`` (call it after the hash check), so little more than the header is paged
    in; the full strict load that follows reports any other problem with the file.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:
        return 1000
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    return int(fc.shape[0]) if fc is not None and getattr(fc, "ndim", 0) == 2 else 1000


def _summarise_mismatch(model_name: str, model, state_dict: dict) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return None

    def head(items: list[str]) -> str:
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return ", ".join(items[:3]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({head(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({head(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches ({head(shapes)})")
    return f"this checkpoint is not a {model_name} checkpoint: " + "; ".join(parts)


def load_weights(model, model_name: str, weights: str, *, check_hash: bool = True) -> Path:
    """Load ``weights`` (a tag or a path) into ``model`` strictly; returns the checkpoint's path.

    The hash is checked before the file is unpickled, and unpickling uses ``weights_only=True``. A checkpoint of
    another architecture is refused with a summary of its missing, unexpected and mis-shaped keys.
    """
    import torch

    path, expected = resolve_weights(model_name, weights)
    if check_hash:
        verify_hash(path, expected)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise _unreadable(path, exc, model_name) from None
    if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path} holds a {type(state_dict).__name__}, not a state_dict")
    problem = _summarise_mismatch(model_name, model, state_dict)
    if problem:
        raise WeightsError(f"{path}: {problem}")
    model.load_state_dict(state_dict, strict=True)
    return path
