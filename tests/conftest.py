"""Shared fixtures: tiny sweeps, the CLI in a subprocess, real services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

TINY_SWEEP = """
name = "{name}"
seeds = [0, 1]

[data]
dataset = "blobs"
n_classes = 4
n_features = 8
n_samples = 240
cluster_std = 2.0

[model]
kind = "mlp"
depth = 1

[training]
epochs = {epochs}
early_probes = 2

[outcome]
window = 2

[early_stop]
patience = 2

[knobs]
loss = {losses}
width = [16]
"""


def write_sweep(folder: Path, name: str = "tiny", epochs: int = 3, losses: str = '["unfused", "fused_logits"]', extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(TINY_SWEEP.format(name=name, epochs=epochs, losses=losses)) + extra)
    return path


@pytest.fixture
def tiny_sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path)


def cli(*args: str, timeout: float = 600, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "remedysweep.runner.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def need(tool: str, what: str) -> str:
    """The path of an external tool, skipping the test where it is missing
    (failing instead under CI, whose .ci/run installs it)."""
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} ({what}) is not installed; .ci/run should have installed it")
        pytest.skip(f"{tool} ({what}) is not installed")
    return path


EXAMPLE_PLUGIN = Path(__file__).parent / "plugin_example"


def pip_install(*args: str) -> None:
    """pip into the test environment (or a --target), offline for local folders."""
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", *isolation, *args],
        check=True, capture_output=True, text=True,
    )


def pytest_configure(config):
    """Install the example plugin package (tests/plugin_example) into the test
    environment before collection, so the contract suite covers it like any
    installed remedy."""
    import importlib.metadata

    try:
        installed = importlib.metadata.version("remedysweep-focal")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != "0.2.0":
        pip_install(str(EXAMPLE_PLUGIN))
        importlib.invalidate_caches()
