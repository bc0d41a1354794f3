"""Smoke run of the key-service benchmark (tests/benchmarks/bench_kms.py --quick): it starts a
real OpenBao and key service, and every case must complete rounds with zero errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parent / "bench_kms.py"


def test_bench_kms_quick_reports_zero_errors_and_positive_rates(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)],  # noqa: S603
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    cases = {(c["kind"], c["clients"]): c for c in res["cases"]}
    assert set(cases) == {(k, n) for k in ("mock", "snp-verify+deny") for n in (1, 8)}
    for key, c in cases.items():
        assert c["errors"] == 0 and c["error_kinds"] == {}, (key, c["error_kinds"])
        assert c["rounds"] > 0 and c["rate_per_s"] > 0, key
        assert 0 < c["release_p50_ms"] <= c["release_p99_ms"], key
        assert c["release_p50_ms"] < c["round_p50_ms"], key  # the round includes the ReleaseKey call
    ref = res["reference"]
    transit = next(v for k, v in ref.items() if k.startswith("bare Transit decrypt"))
    snp = next(v for k, v in ref.items() if k.startswith("verify_snp"))
    assert transit["n"] > 0 and transit["p50_ms"] > 0 and snp["p50_ms"] > 0
    # every round wrote audit records (challenge + grant/deny), fsync'd by the real service
    total_rounds = sum(c["rounds"] for c in cases.values())
    assert res["audit_records"] >= 2 * total_rounds
    assert "| case" in proc.stdout and "snp-verify+deny" in proc.stdout
