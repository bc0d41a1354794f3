"""Short atheris runs of the mock/bundle and policy harnesses (a subprocess each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.fuzz
@pytest.mark.parametrize("harness", ["fuzz_attest_mock.py", "fuzz_attest_policy.py"])
def test_atheris_short_run(harness: str, tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: S603 - our own harness
        [sys.executable, str(HERE / harness), "-runs=3000", "-max_len=600", "-seed=1234", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 3000 runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
