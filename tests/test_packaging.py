"""The wheel a user installs carries everything the code reads at run time, and works without the
source checkout: built here from the same files the Dockerfile copies, then imported from the
unpacked wheel alone (``python -S``: no editable install, no repository on the path)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what deploy/Dockerfile copies into its build stage (kept in step by test_build_inputs_match_dockerfile)
BUILD_INPUTS = ["pyproject.toml", "README.md", "LICENSE", "weightseal_cli.py", "weightseal_demo.py",
                "attest", "proto", "kms", "loader"]


def test_build_inputs_match_dockerfile() -> None:
    copied: list[str] = []
    for line in (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        # the build stage's COPYs into the source dir (WORKDIR /src): "COPY a b ./" or "COPY x ./x"
        if parts[:1] == ["COPY"] and not parts[1].startswith("--") and parts[-1].startswith("./"):
            copied += parts[1:-1]
    expanded = sorted({q.name for c in copied for q in ROOT.glob(c)})
    assert expanded == sorted(BUILD_INPUTS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",  # noqa: S603
                           "--no-index", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("weightseal-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_wheel_carries_the_run_time_data_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        inside = {n: _sha(z.read(n)) for n in names if not n.endswith("/")}
    expected = {
        # kms serve --dev and the demo install these into Vault
        "weightseal/kms/vault_policies/weightseal-kms.hcl": ROOT / "kms/vault_policies/weightseal-kms.hcl",
        "weightseal/kms/vault_policies/weightseal-admin.hcl": ROOT / "kms/vault_policies/weightseal-admin.hcl",
        # pinned vendor roots the verifiers trust
        **{f"weightseal/attest/roots/{p.name}": p for p in sorted((ROOT / "attest/roots").glob("*.pem"))},
        "weightseal/loader/FORMAT.md": ROOT / "loader/FORMAT.md",
        "weightseal/proto/weightseal_v1.proto": ROOT / "proto/weightseal_v1.proto",
        "weightseal_cli.py": ROOT / "weightseal_cli.py",
    }
    assert len([k for k in expected if k.startswith("weightseal/attest/roots/")]) >= 2
    for arcname, path in expected.items():
        assert arcname in inside, arcname
        assert inside[arcname] == _sha(path.read_bytes()), arcname
    # nothing from the repository outside the packages (tests, deploy, the venv) rides along
    assert not [n for n in names if n.startswith(("tests/", "deploy/", ".venv/", "kms/", "loader/"))]


def test_installed_wheel_finds_its_vault_policies_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    deps = sysconfig.get_paths()["purelib"]  # hvac etc.; -S keeps the editable install's .pth out
    code = (
        "import json, weightseal.kms._devvault as dv\n"
        "files = dv._policy_files(dv.DEFAULT_POLICY_DIR)\n"
        "print(json.dumps({'module': dv.__file__, 'dir': str(dv.DEFAULT_POLICY_DIR),"
        " 'policies': sorted(files)}))\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path,  # noqa: S603
                          env={"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert Path(got["module"]).is_relative_to(site), got  # really the wheel's copy
    assert Path(got["dir"]) == site / "weightseal" / "kms" / "vault_policies"
    assert got["policies"] == ["weightseal-admin", "weightseal-kms"]
