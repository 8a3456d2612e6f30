"""``harness run --resume`` given something other than a writable run folder: one line, exit 2, nothing changed.

Issue 14, items 10 and 12: a read-only run folder raised PermissionError on ``.lock``; the run's ``manifest.json``
(a file) raised NotADirectoryError; a folder that is not a run got a ``.lock`` before it was refused.

Tests may run as root, where ``chmod`` does not stop a write. The in-process tests therefore make the run folder
read-only the way a read-only mount would, by refusing every write under it at the OS calls (``open``, ``os.open``,
renames, removals). The ``chmod`` variant runs the command line in a subprocess; as root, under ``setpriv`` without
the capabilities that write through permission bits.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import ROOT, run_cli

SUITE = """
name: tiny
defaults: {device: cpu, resolution: 32}
matrix: {model: [resnet18], mode: [inference], batch_size: [1, 2]}
"""


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A real run folder, as ``harness run`` opens it before measuring (its manifest lists two cases)."""
    from harness.launch.session import new_plan
    from harness.suite import load_suite

    (tmp_path / "tiny.yaml").write_text(SUITE)
    plan = new_plan(load_suite(tmp_path / "tiny.yaml"), tmp_path / "results", None)
    manifest = json.loads((plan.run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (plan.run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (plan.run_dir / "records-rank0.jsonl").write_text(json.dumps({"case_id": "x", "status": "ok"}) + "\n")
    return plan.run_dir


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its kind, mode bits and bytes: equal snapshots mean nothing changed."""
    out = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(folder))] = (
            stat.S_IFMT(info.st_mode),
            stat.S_IMODE(info.st_mode),
            path.read_bytes() if path.is_file() else None,
        )
    return out


def _inside(path, root: Path) -> bool:
    if isinstance(path, int):  # a file descriptor: the open that made it was checked
        return False
    text = os.path.abspath(os.fsdecode(path))
    return text == str(root) or text.startswith(str(root) + os.sep)


def _denied(path):
    return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))


def refuse_writes_under(monkeypatch, root: Path, only=None) -> None:
    """Make ``root`` behave as a read-only folder for this process, root or not: every call that would create,
    change, rename or remove something under it raises PermissionError (EACCES), as the kernel would.
    With ``only``, just that one path is read-only."""
    root = Path(os.path.abspath(root))

    def blocked(path) -> bool:
        return _inside(path, root) if only is None else os.path.abspath(os.fsdecode(path)) == str(only)

    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and blocked(file) and any(c in mode for c in "wax+"):
            raise _denied(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        if blocked(path) and flags & writes:
            raise _denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name in ("replace", "rename"):
        real = getattr(os, name)

        def two(src, dst, *args, _real=real, **kwargs):
            if blocked(src) or blocked(dst):
                raise _denied(dst)
            return _real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, two)
    for name in ("unlink", "remove", "mkdir", "rmdir", "chmod"):
        real = getattr(os, name)

        def one(path, *args, _real=real, **kwargs):
            if not isinstance(path, int) and blocked(path):
                raise _denied(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, one)


def resume(capsys, path) -> tuple[int, str]:
    """``harness run --resume PATH`` in this process; (exit code, stderr). An exception escaping is a failure."""
    code = main(["run", "--resume", str(path), "--no-progress", "--no-report"])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness run: error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


# --- item 10: a run folder that cannot be written -------------------------------------------------------------------


def test_resume_of_a_read_only_run_folder_is_one_line_and_changes_nothing(run_dir, capsys, monkeypatch):
    before = snapshot(run_dir)
    refuse_writes_under(monkeypatch, run_dir)
    code, err = resume(capsys, run_dir)
    monkeypatch.undo()
    assert_one_line(code, err, str(run_dir), "not writable", "make it writable", "copy it")
    assert snapshot(run_dir) == before


def test_resume_of_a_run_folder_whose_lock_is_read_only_is_one_line(run_dir, capsys, monkeypatch):
    (run_dir / ".lock").write_text("")
    before = snapshot(run_dir)
    refuse_writes_under(monkeypatch, run_dir, only=run_dir / ".lock")
    code, err = resume(capsys, run_dir)
    monkeypatch.undo()
    assert_one_line(code, err, str(run_dir / ".lock"), "chmod u+w")
    assert snapshot(run_dir) == before  # the manifest was not set back to running


def _unprivileged(folder: Path) -> list[str]:
    """A command prefix under which permission bits hold: none for a normal user; for root, ``setpriv`` without the
    capabilities that override them (the test skips where that cannot be had)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        if setpriv and subprocess.run([*prefix, "touch", str(probe / "x")], capture_output=True).returncode != 0:
            return prefix
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    pytest.skip("running as root, and setpriv cannot drop the capabilities that write through chmod here")


def test_resume_of_a_chmod_read_only_run_folder_from_the_command_line(run_dir, tmp_path):
    prefix = _unprivileged(tmp_path)
    for path in [run_dir, *run_dir.iterdir()]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        before = snapshot(run_dir)
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "harness", "run", "--resume", str(run_dir), "--no-progress"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert_one_line(result.returncode, result.stderr, str(run_dir), "not writable", "copy it")
        assert snapshot(run_dir) == before
    finally:
        for path in [run_dir, *run_dir.iterdir()]:
            path.chmod(path.stat().st_mode | 0o200)


# --- item 12: a path that is not a run folder -----------------------------------------------------------------------


def test_resume_of_the_manifest_file_names_the_run_folder_instead(run_dir, capsys):
    before = snapshot(run_dir)
    code, err = resume(capsys, run_dir / "manifest.json")
    assert_one_line(code, err, str(run_dir / "manifest.json"), "is a file", f"--resume {run_dir}")
    assert snapshot(run_dir) == before
    # Any file of the run folder points the same way; a file elsewhere says what to pass.
    code, err = resume(capsys, run_dir / "records-rank0.jsonl")
    assert_one_line(code, err, f"--resume {run_dir}")
    stray = run_dir.parent.parent / "notes.txt"
    stray.write_text("not a run")
    code, err = resume(capsys, stray)
    assert_one_line(code, err, str(stray), "is a file, not a run folder", "manifest.json")


def test_resume_of_the_manifest_file_from_the_command_line(run_dir):
    result = run_cli("run", "--resume", str(run_dir / "manifest.json"), "--no-progress")
    assert_one_line(result.returncode, result.stderr, str(run_dir / "manifest.json"), f"--resume {run_dir}")


def test_resume_of_a_path_that_does_not_exist_says_what_to_pass(tmp_path, capsys):
    code, err = resume(capsys, tmp_path / "nowhere")
    assert_one_line(code, err, str(tmp_path / "nowhere"), "no such file or folder", "run folder: PATH")
    assert not (tmp_path / "nowhere").exists()


def test_resume_of_a_folder_that_is_not_a_run_names_one_and_leaves_it_alone(run_dir, tmp_path, capsys):
    results = run_dir.parent.parent  # results/, holding results/tiny/<run>
    before = snapshot(results)
    code, err = resume(capsys, results)
    assert_one_line(code, err, str(results), "not a run folder", "no manifest.json", f"--resume {run_dir}")
    assert snapshot(results) == before  # no .lock left in a folder that is not a run
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = resume(capsys, empty)
    assert_one_line(code, err, str(empty), "not a run folder", "run folder: PATH")
    assert list(empty.iterdir()) == []


def test_resume_of_a_run_whose_manifest_is_not_a_mapping_is_one_line(run_dir, capsys):
    (run_dir / "manifest.json").write_text("[]")
    before = snapshot(run_dir)
    code, err = resume(capsys, run_dir)
    assert_one_line(code, err, str(run_dir), "manifest.json")
    assert {k: v for k, v in snapshot(run_dir).items() if k != ".lock"} == before
