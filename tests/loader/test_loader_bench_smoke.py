"""Smoke test so the benchmark cannot rot (tiny size; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def test_bench_load_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out), "--dir", str(tmp_path)],  # noqa: S603
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sealed/safetensors" in r.stdout and "sealing:" in r.stdout
    res = json.loads(out.read_text())
    for state in ("warm", "cold"):
        for case in ("safetensors", "sealed", "tensorizer", "floor"):
            assert res["cases"][f"{state}/{case}"]["median"] > 0
    assert res["seal_gbps"] > 0
