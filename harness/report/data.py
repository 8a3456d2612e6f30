"""What the report draws from: the records of the runs as one frame with the derived columns the figures need,
and the snapshot (the latest record of each case on each device) that the per-case sections show.

Several runs of one suite usually repeat the same cases (nightly history); the per-case sections show the latest
record of each case, and the trends section shows the history. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.regress.metrics import number
from harness.store.loader import Run, runs_to_frame
from harness.store.record import Status
from harness.store.skips import Skip

#: The keys of the page-wide filter, in the order of the select boxes.
FILTER_KEYS = ("model", "mode", "precision")
PRECISION_ORDER = ("fp32", "tf32", "amp_fp16", "amp_bf16")
MODE_ORDER = ("inference", "train")
#: One colour per precision, used by every chart, so a precision looks the same everywhere on the page.
PRECISION_COLOURS = {"fp32": "#3b6ea8", "tf32": "#4c9a6a", "amp_fp16": "#e08a2c", "amp_bf16": "#9a5bb5"}
OTHER_COLOUR = "#7f7f7f"
#: Colours of charts that are not split by precision (ops counts, profiles), chosen apart from the precisions'.
NEUTRAL_COLOUR = "#2a9d8f"
NEUTRAL_LIGHT = "#b9ddd8"
#: Device colours, used instead of the precision's wherever the records come from several devices.
DEVICE_PALETTE = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#7b4fa0", "#00798c", "#8c5e3c", "#e377c2")
#: The resolution a case id leaves out (``harness.suite.case``); the page shows it anyway.
DEFAULT_RESOLUTION = 224


def device_colours(devices) -> dict[str, str]:
    """A colour per distinct device (sorted by name, so a device keeps its colour on every page of one set)."""
    names = sorted({str(d) for d in devices if d is not None and d == d})
    return {d: DEVICE_PALETTE[i % len(DEVICE_PALETTE)] for i, d in enumerate(names)}


def shown_id(case_id: Any, resolution: Any) -> str:
    """The case id as the page shows it: with the resolution always, ``/r224`` included (a case id leaves the
    default resolution out), in the id's own place (after the memory format, before ``compile``)."""
    text = str(case_id)
    parts = text.split("/")
    res = number(resolution)
    if res is None or any(p.startswith("r") and p[1:].isdigit() for p in parts[4:]):
        return text
    at = len(parts) - 1 if parts and parts[-1] == "compile" else len(parts)
    return "/".join([*parts[:at], f"r{int(res)}", *parts[at:]])


def precision_colour(precision: Any) -> str:
    """The chart colour of ``precision`` (grey for an unknown one)."""
    return PRECISION_COLOURS.get(str(precision), OTHER_COLOUR)


def model_order(models) -> list[str]:
    """Models in catalog order (smallest family members first), then unknown names alphabetically."""
    from harness.zoo.catalog import MODEL_NAMES

    rank = {name: i for i, name in enumerate(MODEL_NAMES)}
    return sorted({str(m) for m in models if m is not None and m == m}, key=lambda m: (rank.get(m, len(rank)), m))


def ordered(values, order: tuple[str, ...]) -> list[str]:
    """Distinct ``values`` in the given ``order``, unknown ones last."""
    seen = {str(v) for v in values if v is not None and v == v}
    return [v for v in order if v in seen] + sorted(seen - set(order))


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or a column of nulls when the records never had that field (e.g. no telemetry at all)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def truthy(value: Any) -> bool:
    """True for a true boolean (numpy's too); False for false, None and NaN."""
    return value is not None and value == value and bool(value)


def noise_text(noisy: Any, noise: Any) -> str:
    """Why a record is marked noisy, in words (its ``noise`` reasons joined), or '' when it is not marked."""
    if not truthy(noisy):
        return ""
    reasons = [str(r) for r in noise if r] if isinstance(noise, (list, tuple)) else []
    return "; ".join(reasons) or "marked noisy (no reason recorded)"


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the columns the figures share: ``tput`` (img/s: the record's ``throughput_img_s``, the median step's
    figure that the run's summary and ``harness compare`` show too; global for DDP), ``noisy`` and ``noise_text``
    (whether the record is marked as measured under contention or with stalled steps, and why; records without
    the marking read as not noisy), ``mem_mib`` and ``mem_kind``,
    ``gmacs`` (measured GMACs per image), ``fmt`` (NCHW or channels_last), ``device_key``, ``has_samples``,
    ``variant`` (what tells cases of one model and batch size apart beyond precision and memory format:
    resolution or device when the frame holds several, compile, DDP world size) and ``label`` (model, batch
    size and variant: the case's axis label)."""
    df = frame.copy()
    if df.empty:
        names = ("tput", "noisy", "noise_text", "mem_mib", "mem_kind", "gmacs", "fmt", "device_key", "variant")
        for name in (*names, "has_samples", "label", "xlabel", "case", "run"):
            df[name] = pd.Series(dtype=object)
        return df
    tput = pd.to_numeric(column(df, "throughput_img_s"), errors="coerce")
    glob = pd.to_numeric(column(df, "global_throughput_img_s"), errors="coerce")
    ws = pd.to_numeric(column(df, "world_size"), errors="coerce").fillna(1)
    df["tput"] = glob.where((ws > 1) & glob.notna(), tput)
    df["noise_text"] = [noise_text(f, n) for f, n in zip(column(df, "noisy"), column(df, "noise"), strict=True)]
    df["noisy"] = df["noise_text"] != ""
    alloc = pd.to_numeric(column(df, "peak_allocated_mib"), errors="coerce")
    rss = pd.to_numeric(column(df, "rss_peak_mib"), errors="coerce")
    df["mem_mib"] = alloc.where(alloc.notna(), rss)
    df["mem_kind"] = [
        "peak allocated (CUDA)" if a == a else ("peak RSS (CPU)" if r == r else None)
        for a, r in zip(alloc, rss, strict=True)
    ]
    df["gmacs"] = pd.to_numeric(column(df, "macs_per_img"), errors="coerce") / 1e9
    df["fmt"] = ["channels_last" if truthy(c) else "NCHW" for c in column(df, "channels_last")]
    dev = column(df, "device_name")
    if "env.device_name" in df.columns:
        dev = dev.where(dev.notna(), df["env.device_name"])
    df["device_key"] = dev.where(dev.notna(), column(df, "device")).fillna("?").astype(str)
    many_res = column(df, "resolution").nunique(dropna=True) > 1
    many_dev = df["device_key"].nunique() > 1
    variants = []
    for res, device, comp, world in zip(
        column(df, "resolution"), df["device_key"], column(df, "compile"), ws, strict=True
    ):
        text = f" {_int(res)}px" if many_res else ""
        text += " compiled" if truthy(comp) else ""
        text += f" ddp×{int(world)}" if world > 1 else ""
        text += f" @ {device}" if many_dev else ""
        variants.append(text)
    df["variant"] = variants
    df["has_samples"] = [isinstance(s, list) and len(s) > 0 for s in column(df, "samples_ms")]
    labels = [f"{m} bs{_int(b)}{v}" for m, b, v in zip(df["model"], df["batch_size"], variants, strict=True)]
    df["label"] = labels
    df["xlabel"] = [lab.removesuffix(f" @ {d}") for lab, d in zip(labels, df["device_key"], strict=True)]
    df["case"] = [shown_id(c, r) for c, r in zip(df["case_id"], column(df, "resolution"), strict=True)]
    df["run"] = [run_label(r) if r == r and r is not None else "" for r in column(df, "run_dir")]
    return df


def _int(value: Any) -> str:
    n = number(value)
    return str(int(n)) if n is not None and n == int(n) else str(value)


def snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest record of each case on each device (any status), rank 0 of DDP cases: what the run is now."""
    if frame.empty:
        return frame
    df = frame.assign(_started=column(frame, "run_started_at").fillna("").astype(str), _order=range(len(frame)))
    df = df.sort_values(["_started", "_order", "rank"], kind="stable")
    # Within a run a DDP case has one record per rank: keep the lowest rank. Across runs keep the latest run.
    df = df.drop_duplicates(["run_dir", "case_id", "device_key"], keep="first")
    df = df.drop_duplicates(["case_id", "device_key"], keep="last")
    return df.drop(columns=["_started", "_order"]).sort_index()


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with status ok and a measured throughput."""
    if frame.empty:
        return frame
    return frame[(frame["status"] == Status.OK) & frame["tput"].notna()]


@dataclass
class ReportData:
    """Everything one page is built from: the runs, all their records, the snapshot, and what was skipped
    (``skipped``: one line each, shown on the page; ``skips``: the loader's skips, printed by the command)."""

    runs: list[Run]
    frame: pd.DataFrame
    snapshot: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    #: The run the changes section compares against (None: the oldest run of the newest run's suite and
    #: environment), and the folder the page is written to (relative links to traces start there; None: the
    #: current folder).
    baseline: Path | None = None
    base_dir: Path | None = None

    @property
    def devices(self) -> list[str]:
        """The distinct devices of the records, sorted."""
        return sorted(set(self.frame["device_key"])) if not self.frame.empty else []

    @property
    def many_devices(self) -> bool:
        """Whether the records come from more than one device (then rows name their device and charts colour by
        it)."""
        return len(self.devices) > 1

    @property
    def ok(self) -> pd.DataFrame:
        """Snapshot rows that measured something (status ok with a throughput)."""
        return ok_rows(self.snapshot)

    def filter_values(self) -> dict[str, list[str]]:
        """The choices of each select box of the page filter."""
        snap = self.snapshot
        if snap.empty:
            return {k: [] for k in FILTER_KEYS}
        return {
            "model": model_order(snap["model"]),
            "mode": ordered(snap["mode"], MODE_ORDER),
            "precision": ordered(snap["precision"], PRECISION_ORDER),
        }


def prepare(
    runs: list[Run],
    skipped: list[Skip | str] | None = None,
    *,
    baseline: str | Path | None = None,
    base_dir: str | Path | None = None,
) -> ReportData:
    """Build the report's data from runs read by ``harness.store`` (plus what was skipped on the way there:
    ``read_inputs``'s skips). Which records are valid is the loader's rule alone; every record it gave is shown.
    ``baseline`` names the run the changes section compares against; ``base_dir`` is where the page is written."""
    given = list(skipped or [])
    skips = [s for s in given if isinstance(s, Skip)] + [s for run in runs for s in run.skips]
    notes = [str(s) for s in given] + [str(s) for run in runs for s in run.skips]
    notes += [n for run in runs for n in run.notes]
    frame = derive(runs_to_frame(runs))
    if not frame.empty:
        frame = frame.drop(columns=[c for c in ("samples_ms", "wall_ms") if c in frame.columns])
    return ReportData(
        runs,
        frame,
        snapshot(frame),
        notes,
        skips,
        Path(baseline) if baseline is not None else None,
        Path(base_dir) if base_dir is not None else None,
    )


def run_label(path: Path | str) -> str:
    """A short name for a run folder: its last two parts (suite/timestamp-host-device)."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)
