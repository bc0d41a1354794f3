"""The code stays ruff-clean and mypy --strict clean (STYLE.md): checked in the suite so CI
enforces it.  mypy cannot follow the folder -> weightseal.* mapping of pyproject.toml, so it runs
on a symlinked view, exactly as `make typecheck` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("attest", "kms", "loader", "proto")


@pytest.mark.slow
def test_mypy_strict_clean(tmp_path: Path) -> None:
    view = tmp_path / "weightseal"
    view.mkdir()
    for p in PACKAGES:
        os.symlink(ROOT / p, view / p)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
           "--cache-dir", str(tmp_path / ".mypy_cache")]
    for p in PACKAGES:
        cmd += ["-p", f"weightseal.{p}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_ruff_clean() -> None:
    targets = [*PACKAGES, "tests", "weightseal_cli.py", "weightseal_demo.py"]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *targets], cwd=ROOT,  # noqa: S603
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
