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


# DESIGN.md "Layout": imports only go downward; loader and kms never import each other.
ALLOWED = {
    "attest": set(),
    "proto": {"attest"},
    "loader": {"attest", "proto"},
    "kms": {"attest", "proto"},
}


def _imported_packages(path: Path, own: str) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.level >= 2 and node.module:  # from ..kms import x
                names = [f"weightseal.{node.module}"]
            elif node.level == 0 and node.module:
                names = [node.module]
        for n in names:
            parts = n.split(".")
            if parts[0] == "weightseal" and len(parts) > 1 and parts[1] != own:
                found.add(parts[1])
            if parts[0] in ALLOWED and parts[0] != own:  # a bare `import loader` would be a bug too
                found.add(parts[0] + " (bare)")
    return found


def test_layering() -> None:
    bad = []
    for pkg, allowed in ALLOWED.items():
        for f in sorted((ROOT / pkg).rglob("*.py")):
            extra = _imported_packages(f, pkg) - allowed
            if extra:
                bad.append(f"{f.relative_to(ROOT)} imports {sorted(extra)}")
    assert bad == []
    # the detector itself can fail: the demo (command-line layer) uses both on purpose
    assert {"kms", "loader"} <= _imported_packages(ROOT / "weightseal_demo.py", "")
