"""A store's first read, made fast without changing what it reads: manifests whose case lists are parsed once for
all the runs that share them (``read_manifest(shared=True)``), and records checked as columns
(``harness.store.columns``), with the loader's line-by-line check for any run the columns do not vouch for. Each
shortcut is held against the plain reading on the same input: the same values, or the same error and skips."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import pytest

from harness.store.loader import read_run, read_run_table, read_run_vouched, records_files
from harness.store.rundir import ManifestError, _SharedLists, new_manifest, read_manifest, write_json_atomic
from tests.synthetic import FINGERPRINT, case_id, make_record, make_run

pa = pytest.importorskip("pyarrow")

from harness.store.columns import checked_table  # noqa: E402
from harness.store.index import records_table  # noqa: E402


def cases(n: int, device: str = "cpu") -> list[dict]:
    out = []
    for i in range(n):
        model = ("resnet18", "resnet50")[i % 2]
        cid = case_id(model, "inference", 2 ** (i % 5), "fp32", False)
        out.append({"id": cid, "model": model, "batch_size": 2 ** (i % 5), "device": device, "tags": [], "x": i})
    return out


def manifest(n: int = 40, device: str = "cpu", started_at: str = "2026-01-01T00:00:00Z") -> dict:
    """A manifest as a run writes it: the resolved suite's cases in ``suite`` and at the top, and ``case_ids``."""
    specs = cases(n, device)
    suite = {"name": "nightly", "regression": {"threshold": 0.05}, "case_count": n, "cases": specs}
    out = new_manifest("run", suite, dict(FINGERPRINT))
    out.update(started_at=started_at, status="complete", cases=specs, case_ids=[c["id"] for c in specs])
    return out


def outcome(read, path: Path):
    """What a reading gives: the manifest, or the error's kind and message."""
    try:
        return "ok", read(path)
    except ManifestError as exc:
        return exc.kind, str(exc)


def test_a_manifest_read_with_shared_lists_is_the_manifest(tmp_path):
    shared = _SharedLists()
    runs = []
    for n, device in enumerate(["cpu", "cpu", "cuda", "cpu"]):
        run = tmp_path / f"r{n}"
        run.mkdir()
        write_json_atomic(run / "manifest.json", manifest(device=device, started_at=f"2026-01-0{n + 1}T00:00:00Z"))
        runs.append(run)
    read = [shared.parse((run / "manifest.json").read_bytes()) for run in runs]
    assert read == [json.loads((run / "manifest.json").read_text()) for run in runs]
    assert read[0]["cases"] is read[1]["cases"] is read[3]["cases"]  # parsed once, then taken as it was
    assert read[0]["suite"]["cases"] is read[1]["suite"]["cases"] and read[0]["case_ids"] is read[2]["case_ids"]
    assert read[2]["cases"] is not read[0]["cases"] and read[2]["cases"] != read[0]["cases"]  # other bytes
    assert len(shared.known) == 5
    assert [read_manifest(run, shared=True) for run in runs] == [read_manifest(run) for run in runs]


def _edit(text: str, change: str) -> str:
    """The manifest text ``text`` with one change (each a way a manifest may be written, or broken)."""
    first = text.index('"cases": [')
    inside = text.index('"resnet50"', first)
    return {
        "as written": text,
        "compact": json.dumps(json.loads(text)),
        "indent 4": json.dumps(json.loads(text), indent=4),
        "corrupt inside a list": text[:inside] + "resnet50" + text[inside + 10 :],
        "cut inside a list": text[:inside],
        "corrupt outside the lists": text.replace('"status": "complete"', '"status": complete'),
        "not UTF-8 inside a list": text[:inside] + '"\udcff"' + text[inside + 10 :],
        "a list closed early": text.replace("\n    ]", "\n    ]]", 1),
        "a list closed at another indent": text.replace("\n    ]", "\n   ]", 1),
        "a list that is not all strings": text.replace('"case_ids": [\n    "', '"case_ids": [\n    5, "', 1),
        "cases not a list": text.replace('"case_ids": [', '"case_ids": 5, "x": [', 1),
        "an empty list": text.replace('"cases": [', '"cases": [], "old_cases": [', 1),
        "the key twice": text.replace('"status": "complete"', '"status": "complete", "cases": [1]'),
        "a mark in a string": text.replace('"status": "complete"', '"status": "\\u0000harness-shared-list:0"'),
        "a NUL in a string": text.replace('"status": "complete"', '"status": "\\u0000"'),
        "a key of the name elsewhere": text.replace('"host": "', '"cases": [\n  1\n  ], "host": "'),
        "a newer schema": text.replace('"schema_version": 1', '"schema_version": 99'),
        "a list of another list": text.replace('"cases": [', '"cases": [[1]], "y": [', 1),
        "a BOM": "\ufeff" + text,
    }[change]


CHANGES = [
    "as written",
    "compact",
    "indent 4",
    "corrupt inside a list",
    "cut inside a list",
    "corrupt outside the lists",
    "not UTF-8 inside a list",
    "a list closed early",
    "a list closed at another indent",
    "a list that is not all strings",
    "cases not a list",
    "an empty list",
    "the key twice",
    "a mark in a string",
    "a NUL in a string",
    "a key of the name elsewhere",
    "a newer schema",
    "a list of another list",
    "a BOM",
]


@pytest.mark.parametrize("change", CHANGES)
def test_a_manifest_read_with_shared_lists_reads_or_fails_as_the_plain_reading(tmp_path, change):
    run = tmp_path / "run"
    run.mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    write_json_atomic(run / "manifest.json", manifest())
    _ = read_manifest(run, shared=True)  # its lists known, as after the first run of a store
    text = _edit((run / "manifest.json").read_text(), change)
    data = text.encode("utf-8", "surrogateescape")
    for folder in (run, plain):
        (folder / "manifest.json").write_bytes(data)
    got = outcome(lambda p: read_manifest(p, shared=True), run)
    want = outcome(read_manifest, plain)
    assert got[0] == want[0]
    assert (got[1].replace(str(run), "") if got[0] != "ok" else got[1]) == (
        want[1].replace(str(plain), "") if want[0] != "ok" else want[1]
    )


# -- records checked as columns ------------------------------------------------------------------------------------

VALUES = [None, 0, 1, -1, 2, 1.5, -0.0, 1e300, "", "x", "2026-01-01T00:00:00Z", True, False, [], [1.0, 2], ["a"],
          [None], [[1.0]], {}, {"a": 1}, "ok", "error"]  # fmt: skip
TOKENS = ["NaN", "Infinity", "-Infinity", "Inf", "-NaN"]


def records(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        status = "ok" if i % 3 else "oom"
        rec = make_record(model=("resnet18", "resnet50")[i % 2], batch_size=2**i, seed=i, status=status, n=5 + i)
        rec["telemetry"] = {**rec["telemetry"], "power_avg_w": 100.0 + i, "sm_clock_mhz": 1500 + i}
        rec["tags"] = ["nightly"] if i % 2 else []
        out.append(rec)
    return out


def write(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(lines))
    write_json_atomic(folder / "manifest.json", manifest(4))
    return folder


def rows(table) -> list:
    """The table's values, NaN as a string (NaN is not equal to itself, and the tables hold it alike)."""

    def plain(value):
        if isinstance(value, float) and value != value:
            return "NaN"
        return [plain(v) for v in value] if isinstance(value, list) else value

    return [[plain(v) for v in column.to_pylist()] for column in table.columns]


def same(folder: Path) -> bool:
    """Check the column check against the loader on the run in ``folder``: where it vouches, the loader skipped
    nothing and made the same table; in any case, ``read_run_table`` and ``read_run_vouched`` give what the loader
    gives. Returns whether it vouched."""
    data = b"\n".join(f.read_bytes() for f in records_files(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = checked_table(data)
        run = read_run(folder)
        table, skips, notes, _ = read_run_table(folder)
        vouched = read_run_vouched(folder)
    expected = records_table(run.records)
    if fast is not None:
        assert not run.skips, run.skips
        assert fast.schema == expected.schema and rows(fast) == rows(expected)
    assert table.schema == expected.schema and rows(table) == rows(expected)
    assert [str(s) for s in skips] == [str(s) for s in run.skips] and notes == run.notes
    assert vouched.records == run.records and vouched.skips == run.skips and vouched.notes == run.notes
    return fast is not None


def test_valid_records_are_vouched_for_and_make_the_loaders_table(tmp_path):
    lines = [json.dumps(r) + "\n" for r in records()]
    assert same(write(tmp_path / "plain", lines))
    assert same(write(tmp_path / "crlf blank lines", [line.replace("\n", "\r\n") + "\n  \n" for line in lines]))
    assert same(write(tmp_path / "no last newline", [*lines[:-1], lines[-1].rstrip("\n")]))
    compact = [json.dumps(r, separators=(",", ":")) + "\n" for r in records()]
    assert same(write(tmp_path / "compact", compact))
    sparse = [json.dumps({k: v for k, v in r.items() if v is not None and k != "profile"}) + "\n" for r in records()]
    assert same(write(tmp_path / "nulls left out", sparse))
    groups = [dict(r, numerics=None, contention={}, telemetry={"power_avg_w": 5}) for r in records()]
    assert same(write(tmp_path / "groups", [json.dumps(r) + "\n" for r in groups]))
    floats = [dict(r, throughput_img_s=7, samples_ms=[1, 2.5, 0.1, 2.2250738585072011e-308]) for r in records()]
    assert same(write(tmp_path / "floats", [json.dumps(r) + "\n" for r in floats]))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "exploded"},
        {"case_id": ""},
        {"model": None},
        {"rank": None},
        {"rank": -1},
        {"world_size": 0},
        {"batch_size": 1.5},
        {"batch_size": 1.0},
        {"batch_size": True},
        {"throughput_img_s": True},
        {"throughput_img_s": "1.0"},
        {"samples_ms": [1.0, None]},
        {"samples_ms": [1.0, "2"]},
        {"tags": ["a", 1]},
        {"noise": None},
        {"schema_version": 1},
        {"schema_version": 3},
        {"schema_version": None},
        {"extra_field": 1},
        {"accuracy": {"top1": 0.7}},
        {"telemetry": 5},
        {"telemetry": {"power_avg_w": {"a": 1}}},
        {"telemetry": {"new_key": 1}},
        {"telemetry": {"power_avg_w": "2026-01-01T00:00:00Z"}},
        {"numerics": {"max_rel_err": 2**70}},  # (an integer that large in a declared field stops the loader's table)
    ],
    ids=str,
)
def test_a_record_the_columns_cannot_vouch_for_leaves_the_run_to_the_loader(tmp_path, change):
    recs = records()
    recs[3] = {**recs[3], **change}
    assert not same(write(tmp_path / "run", [json.dumps(r) + "\n" for r in recs]))


@pytest.mark.parametrize(
    "line",
    [
        "null\n",
        "[1, 2]\n",
        "5\n",
        '{"case_id": "a"}{"case_id": "b"}\n',
        '{"case_id": "a", "case_id": "b", "model": "m", "status": "ok"}\n',
        '{"not json\n',
        "\ufeff{}\n",
        '\x0c{"case_id": "a", "model": "m", "status": "ok"}\n',
        '{"case_id": "a", "model": "m", "status": "ok", "schema_version": 2, "message": "\udcff"}\n',
        '{"case_id": "a", "model": "m", "status": "ok", "schema_version": 2}',  # the last line, not cut short
    ],
    ids=repr,
)
def test_a_line_the_columns_cannot_vouch_for_leaves_the_run_to_the_loader(tmp_path, line):
    lines = [json.dumps(r) + "\n" for r in records()]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "records.jsonl").write_bytes("".join([*lines, line]).encode("utf-8", "surrogateescape"))
    write_json_atomic(folder / "manifest.json", manifest(4))
    same(folder)


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("field", ["throughput_img_s", "samples_ms", "telemetry"])
def test_nan_and_infinities_are_read_by_the_loader(tmp_path, token, field):
    recs = records()
    mark = "@value@"
    if field == "telemetry":
        recs[2]["telemetry"]["power_avg_w"] = mark
    else:
        recs[2][field] = [1.0, mark] if field == "samples_ms" else mark
    lines = [json.dumps(r).replace(f'"{mark}"', token) + "\n" for r in recs]
    assert token in lines[2]
    assert not same(write(tmp_path / "run", lines))


def test_records_with_values_of_every_kind_in_every_field(tmp_path):
    """Random records (a field or two of each set to a value of another kind): wherever the columns vouch for a run,
    the loader found every record valid and made the same table."""
    rng = random.Random(0)
    vouched = 0
    for n in range(150):
        recs = records(4)
        for rec in recs:
            for _ in range(rng.choice([0, 0, 1, 2])):
                name = rng.choice(sorted(rec))
                value = rng.choice(VALUES)
                group = rec[name] if isinstance(rec[name], dict) else None
                if name in ("telemetry", "numerics", "contention") and group and rng.random() < 0.7:
                    value = {**group, rng.choice(sorted(group)): value}
                rec[name] = value
        vouched += same(write(tmp_path / f"r{n}", [json.dumps(r) + "\n" for r in recs]))
    assert 10 < vouched < 150  # both ways were taken


def test_a_run_of_several_rank_files_is_checked_as_one(tmp_path):
    recs = records()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "records-rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:3]))
    (folder / "records-rank1.jsonl").write_text("".join(json.dumps(dict(r, rank=1)) + "\n" for r in recs[3:]))
    write_json_atomic(folder / "manifest.json", manifest(4))
    assert same(folder)
    with open(folder / "records-rank1.jsonl", "a") as f:
        f.write('{"case_id": "x", "model": "m", "status": "exploded"}\n')
    assert not same(folder)


def test_without_pyarrow_json_every_run_is_read_by_the_loader(tmp_path, monkeypatch):
    import sys

    folder = write(tmp_path / "run", [json.dumps(r) + "\n" for r in records()])
    monkeypatch.setitem(sys.modules, "pyarrow.json", None)
    assert checked_table((folder / "records.jsonl").read_bytes()) is None
    run = read_run_vouched(folder)
    assert run.records == read_run(folder).records


def test_a_store_read_cold_says_what_it_said_before(tmp_path, capsys, monkeypatch):
    """A tree of runs with many cases each: export and compare --history, cold then warm, say the same, with a bad
    record skipped and listed (exit 5), and what they read is what the loader reads; compare's history read through
    the column check (``VOUCH_MIN`` new runs or more) or line by line says the same."""
    import shutil

    import harness.store.index
    import harness.store.loader
    from harness.store import load
    from tests.unit.test_store_hostile import cli

    vouched = []
    read = harness.store.loader.read_run_vouched
    monkeypatch.setattr(
        harness.store.loader, "read_run_vouched", lambda path, *parts: vouched.append(path) or read(path, *parts)
    )
    tree = tmp_path / "tree"
    for day in range(1, 6):
        run = make_run(tree, records(), suite="nightly", started_at=f"2026-01-0{day}T00:00:00Z")
        write_json_atomic(run / "manifest.json", {**manifest(4), "started_at": f"2026-01-0{day}T00:00:00Z"})
    bad = sorted((tree / "nightly").iterdir())[1]
    with open(bad / "records.jsonl", "a") as f:
        f.write('{"case_id": "x", "model": "resnet18", "status": "exploded"}\n')
    said = {}
    for vouch_min in (1, 1000):
        root = tmp_path / "results"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tree, root)
        monkeypatch.setattr(harness.store.index, "VOUCH_MIN", vouch_min)
        candidate = sorted((root / "nightly").iterdir())[-1]
        out = tmp_path / "out"
        for attempt in ("cold", "warm"):
            cmp = cli(capsys, "compare", "--history", "3", "--root", root, candidate, "--format", "json", "--out", out)
            code, text, err = cli(capsys, "export", root, "-o", out / "all.csv")
            said[vouch_min, attempt] = (code, text, err, (out / "all.csv").read_bytes(), cmp)
        assert len(vouched) == 3  # the three runs of the history, read once (cold) through the columns
    assert len(set(said.values())) == 1
    code, _, err, exported, (cmp_code, _, cmp_err) = said[1, "cold"]
    assert code == 5 and "exploded" in err and "skipped 1 input(s): 1 invalid record" in err
    assert cmp_code == 5 and "exploded" in cmp_err
    import io

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = load(root)
    got = pd.read_csv(io.BytesIO(exported))
    assert len(got) == len(frame) == 30
    assert sorted(got["throughput_img_s"].dropna()) == pytest.approx(sorted(frame["throughput_img_s"].dropna()))


def test_manifests_read_in_threads_say_what_one_thread_says(tmp_path, monkeypatch):
    """Many new manifests are read in threads (``THREADS_MIN``): the same summaries, in the same order, and the same
    skips for broken ones (not JSON, not an object, cut short), as read one by one."""
    import harness.store.index
    from harness.store.index import StoreIndex

    for day in range(1, 10):
        run = make_run(tmp_path, records(), suite="nightly", started_at=f"2026-01-0{day}T00:00:00Z")
        write_json_atomic(run / "manifest.json", {**manifest(6 + day % 3), "started_at": f"2026-01-0{day}T00:00:00Z"})
    folders = sorted((tmp_path / "nightly").iterdir())
    (folders[2] / "manifest.json").write_text("{not json")
    (folders[5] / "manifest.json").write_text("[1, 2]")
    text = (folders[7] / "manifest.json").read_text()
    (folders[7] / "manifest.json").write_text(text[: len(text) // 2])

    def read(threads_min: int):
        monkeypatch.setattr(harness.store.index, "THREADS_MIN", threads_min)
        skips = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = StoreIndex(tmp_path, persist=False).runs(skips)
        found = [(r.path, json.dumps(r.summary, sort_keys=True)) for r in runs]
        return found, [(s.where, s.kind, s.message) for s in skips]

    threaded, alone = read(1), read(10_000)
    assert threaded == alone
    assert len(threaded[0]) == 6 and len(threaded[1]) == 3


def test_runs_read_ahead_in_threads_say_what_one_thread_says(tmp_path, monkeypatch):
    """``compare --history`` over many new runs reads and column-checks them in threads ahead of the run whose
    records are being made (``VOUCH_THREADS``): the same runs (records, skips, notes, manifest), in the order asked,
    and the same index entries as one thread makes; a run whose manifest cannot be read stops the reading at that run
    with the same error."""
    import harness.store.index
    from harness.store.index import StoreIndex
    from harness.store.rundir import read_manifest

    monkeypatch.setattr(harness.store.index, "VOUCH_MIN", 2)
    folders = []
    for day in range(1, 10):
        recs = records(6 + day % 3)
        lines = [json.dumps(r) + "\n" for r in recs]
        if day in (3, 6):
            lines.insert(2, '{"case_id": "x", "model": "resnet18", "status": "exploded"}\n')  # refused: a skip
        if day == 7:
            lines.append('{"case_id": "cut short", "mod')  # a truncated last line
        folders.append(write(tmp_path / f"run{day}", lines))
    asked = [folders[i] for i in (4, 0, 8, 2, 6, 1, 4)]  # out of order, and one run twice

    def read(threads: int, paths):
        monkeypatch.setattr(harness.store.index, "VOUCH_THREADS", threads)
        index = StoreIndex(tmp_path, persist=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                runs = index.read_runs(paths)
            except ManifestError as exc:
                return "error", str(exc), json.dumps(index._entries, sort_keys=True, default=str)
        said = [
            (str(r.path), r.records, [(s.where, s.kind, s.message) for s in r.skips], r.notes, r.manifest) for r in runs
        ]
        return said, json.dumps(index._entries, sort_keys=True, default=str)

    threaded, alone = read(2, asked), read(1, asked)
    assert threaded == alone
    said, _ = threaded
    assert [Path(p).name for p, *_ in said] == ["run5", "run1", "run9", "run3", "run7", "run2", "run5"]
    assert any(kind == "invalid record" for _, _, skips, _, _ in said for _, kind, _ in skips)
    assert any(kind == "truncated line" for _, _, skips, _, _ in said for _, kind, _ in skips)
    assert said[0][4] == read_manifest(folders[4])

    (folders[2] / "manifest.json").write_text("{not json")
    threaded, alone = read(3, asked), read(1, asked)
    assert threaded == alone
    assert threaded[0] == "error" and "run3" in threaded[1] and "not JSON" in threaded[1]
