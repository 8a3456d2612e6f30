"""Shared fixtures and marker handling: ``gpu`` tests skip without CUDA, ``browser`` without Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
#: How the browser tests and benchmarks start Debian's Chromium: headless, and with the background traffic off (this
#: machine's network is closed, and a browser must never fetch anything for a report).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    no_browser = pytest.mark.skip(reason=f"needs Chromium at {CHROMIUM} and the playwright package")
    has_gpu = _has_cuda()
    has_browser = os.path.exists(CHROMIUM) and shutil.which("node") is not None or os.path.exists(CHROMIUM)
    try:
        import playwright  # noqa: F401
    except ImportError:
        has_browser = False
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(no_gpu)
        if "browser" in item.keywords and not has_browser:
            item.add_marker(no_browser)


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME with its hub/checkpoints folder, so weights tests never see the user's cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def run_cli(*argv: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m harness ARGV`` in a subprocess, as a user would; returns the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
