"""What a timm benchmark file's name says: mode, precision, memory format, torch, CUDA, device and compile.

The pattern is ``benchmark-<mode>-<precision>-<layout>-pt<torch>-<cu<cuda>|cpu>-<device>[-dynamo].csv``, for
example ``benchmark-infer-amp-nchw-pt291-cu128-4090.csv``. Every part can be overridden from the command line
(``--mode``, ``--precision``, ``--channels-last``, ``--torch``, ``--cuda``, ``--device``, ``--compile``), which is
also how a file with another name is imported. A part that neither the name nor an option gives is an error that
names the part and the option that supplies it. Compile is the one part a name states by its absence: a name that
follows the pattern without ``-dynamo`` is eager; a name that does not follow it leaves compile null (unknown)
unless ``--compile`` or ``--no-compile`` says.

Version digits: ``cu128`` is CUDA 12.8 (the last digit is the minor version). ``pt291`` is torch 2.9.1: for torch
2 and later the first digit is the major, the last the patch and the digits between the minor (``pt2100`` is
2.10.0); torch 1 releases are named without a patch (``pt112`` is 1.12, ``pt113`` is 1.13). ``--torch`` settles
any other spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

PATTERN = "benchmark-<mode>-<precision>-<layout>-pt<torch>-<cu<cuda>|cpu>-<device>[-dynamo].csv"

#: timm's precision names -> the harness's. ``amp`` is float16 autocast.
PRECISIONS = {"amp": "amp_fp16", "amp_fp16": "amp_fp16", "amp_bf16": "amp_bf16", "fp32": "fp32", "tf32": "tf32"}
#: timm's names for a model cast to a low precision (no autocast): no harness precision measures that.
CAST_PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}
#: The harness's precision -> the word used in an imported suite's name.
SUITE_WORD = {"amp_fp16": "amp", "amp_bf16": "amp_bf16", "fp32": "fp32", "tf32": "tf32"}
MODES = {"infer": "inference", "inference": "inference", "train": "train"}
LAYOUTS = {"nchw": False, "nhwc": True}
COMPILE_WORDS = ("dynamo", "compile", "inductor")

#: Device slugs of the published files -> (canonical slug, the name torch or /proc/cpuinfo reports for it).
DEVICES = {
    "rtx3090": ("rtx3090", "NVIDIA GeForce RTX 3090"),
    "3090": ("rtx3090", "NVIDIA GeForce RTX 3090"),
    "rtx4090": ("rtx4090", "NVIDIA GeForce RTX 4090"),
    "4090": ("rtx4090", "NVIDIA GeForce RTX 4090"),
    "rtx5090": ("rtx5090", "NVIDIA GeForce RTX 5090"),
    "5090": ("rtx5090", "NVIDIA GeForce RTX 5090"),
    "pro6000maxq": ("pro6000maxq", "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"),
    "i9_10940x": ("i9_10940x", "Intel(R) Core(TM) i9-10940X CPU @ 3.30GHz"),
    "i7_12700h": ("i7_12700h", "12th Gen Intel(R) Core(TM) i7-12700H"),
}


@dataclass
class Overrides:
    """Values given on the command line; each one wins over what the file name says (None: use the name)."""

    mode: str | None = None
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    torch: str | None = None
    cuda: str | None = None
    device: str | None = None

    def given(self) -> dict[str, object]:
        """The overrides that were set, as a dict for the manifest."""
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class FileSetup:
    """The setup of one file's measurements, from its name and the overrides."""

    mode: str
    precision: str | None  # None when the file is a model cast (see ``cast``)
    cast: str | None  # "bf16"/"fp16" when the model was cast rather than autocast
    timm_precision: str
    channels_last: bool
    compile: bool | None  # None: the name does not follow the pattern and no --compile/--no-compile was given
    torch: str
    cuda: str | None  # None on CPU
    device_type: str
    device_slug: str
    device_name: str
    from_options: list[str] = field(default_factory=list)

    @property
    def suite(self) -> str:
        """The suite name of the imported run, e.g. ``timm-infer-amp-nchw``."""
        mode = "infer" if self.mode == "inference" else "train"
        word = SUITE_WORD.get(self.precision or "", self.timm_precision)
        return f"timm-{mode}-{word}-{'nhwc' if self.channels_last else 'nchw'}"

    @property
    def folder(self) -> str:
        """The run folder name, e.g. ``rtx4090-pt291-cu128-dynamo``: deterministic, so a re-import finds it."""
        backend = f"cu{self.cuda.replace('.', '')}" if self.cuda else "cpu"
        torch = re.sub(r"[^0-9A-Za-z]", "", self.torch)
        return f"{self.device_slug}-pt{torch}-{backend}" + ("-dynamo" if self.compile else "")


def torch_version(digits: str) -> str | None:
    """``291`` -> ``2.9.1``, ``2100`` -> ``2.10.0``, ``113`` -> ``1.13``; None when the digits fit no rule."""
    if not digits.isdigit() or len(digits) < 2:
        return None
    if digits[0] == "1":
        return f"1.{int(digits[1:])}"
    if len(digits) == 2:
        return f"{digits[0]}.{digits[1]}"
    return f"{digits[0]}.{int(digits[1:-1])}.{digits[-1]}"


def cuda_version(digits: str) -> str | None:
    """``128`` -> ``12.8``, ``130`` -> ``13.0``; None when ``digits`` is not at least two digits."""
    if not digits.isdigit() or len(digits) < 2:
        return None
    return f"{int(digits[:-1])}.{digits[-1]}"


def device_for(slug: str) -> tuple[str, str]:
    """(canonical slug, device name) for a device slug; an unknown slug is its own name."""
    key = slug.strip().lower()
    if key in DEVICES:
        return DEVICES[key]
    clean = re.sub(r"[^A-Za-z0-9_.]+", "_", slug.strip()).strip("_").lower() or "device"
    return clean, slug.strip()


def _choices(mapping: dict) -> str:
    return ", ".join(mapping)


def parse_file_name(path: Path, overrides: Overrides, column_modes: tuple[str, ...] = ()) -> FileSetup:
    """The setup of ``path``'s measurements from its name, with ``overrides`` applied.

    ``column_modes`` are the modes the file's columns hold (``infer_``/``train_`` prefixes); when the name gives no
    mode and exactly one is present, it is used. Raises a HarnessError naming every part that could not be read
    and the option that would supply it.
    """
    tokens = Path(path).stem.split("-")
    if tokens and tokens[0] == "benchmark":
        tokens = tokens[1:]
    compiled = bool(tokens) and tokens[-1].lower() in COMPILE_WORDS
    if compiled:
        tokens = tokens[:-1]
    part = dict(enumerate(tokens))
    problems: list[str] = []
    used: list[str] = []

    def bad(index: int, what: str, expected: str, option: str) -> None:
        token = part.get(index)
        found = f"part {index + 1} is {token!r}" if token is not None else "the name has no such part"
        problems.append(f"{what}: {found}; expected {expected} (or pass {option})")

    # mode
    mode = MODES.get((part.get(0) or "").lower())
    if overrides.mode:
        mode = MODES[overrides.mode]
        used.append("mode")
    elif mode is None and len(column_modes) == 1:
        mode = MODES[column_modes[0]]
    elif mode is None:
        bad(0, "mode", "infer or train", "--mode")
    # precision
    word = (part.get(1) or "").lower()
    precision, cast = PRECISIONS.get(word), (word if word in CAST_PRECISIONS else None)
    if overrides.precision:
        precision, cast = PRECISIONS[overrides.precision], None
        used.append("precision")
    elif precision is None and cast is None:
        bad(1, "precision", _choices({**PRECISIONS, **CAST_PRECISIONS}), "--precision")
    # memory format
    channels_last = LAYOUTS.get((part.get(2) or "").lower())
    if overrides.channels_last is not None:
        channels_last = overrides.channels_last
        used.append("channels_last")
    elif channels_last is None:
        bad(2, "layout", "nchw or nhwc", "--channels-last or --no-channels-last")
    # torch
    token = part.get(3) or ""
    torch = torch_version(token[2:]) if token.lower().startswith("pt") else None
    torch_token_ok = torch is not None
    if overrides.torch:
        torch = overrides.torch
        used.append("torch")
    elif torch is None:
        bad(3, "torch version", "pt<digits> such as pt291", "--torch 2.9.1")
    # CUDA or CPU
    token = (part.get(4) or "").lower()
    backend_ok = token == "cpu" or (token.startswith("cu") and cuda_version(token[2:]) is not None)
    cuda = cuda_version(token[2:]) if token.startswith("cu") else None
    backend_token_ok = backend_ok
    if overrides.cuda:
        cuda = None if overrides.cuda.lower() in ("cpu", "none") else overrides.cuda
        backend_ok = True
        used.append("cuda")
    elif not backend_ok:
        bad(4, "CUDA version", "cu<digits> such as cu128, or cpu", "--cuda 12.8 or --cuda cpu")
    # device: everything between the backend and the optional -dynamo
    slug = "-".join(tokens[5:])
    if overrides.device:
        slug = overrides.device
        used.append("device")
    elif not slug:
        problems.append("device: the name has no device part after the CUDA version (or pass --device NAME)")
    if overrides.compile is not None:
        compiled = overrides.compile
        used.append("compile")
    elif not compiled and not (torch_token_ok and backend_token_ok):
        # Without the pattern's pt<torch>-<cu|cpu> parts, a missing -dynamo says nothing: compile is unknown.
        compiled = None
    if problems:
        lines = "\n  ".join(problems)
        raise HarnessError(f"{path}: the file name does not follow {PATTERN}:\n  {lines}")
    canonical, name = device_for(slug)
    return FileSetup(
        mode=mode,
        precision=precision,
        cast=cast,
        timm_precision=word,
        channels_last=bool(channels_last),
        compile=compiled,
        torch=torch,
        cuda=cuda if backend_ok else None,
        device_type="cuda" if cuda else "cpu",
        device_slug=canonical,
        device_name=name,
        from_options=used,
    )
