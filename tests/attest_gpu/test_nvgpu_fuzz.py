"""Short fuzz runs: atheris (subprocess, fixed run count) and a hypothesis sweep of the same
targets.  Only AttestationError may escape the verifier's inner functions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nvgpu_testlib import GPU_REASONS, hopper, legacy_rims
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu import _verify
from weightseal.attest._nvgpu_rim import _verify_rim

HERE = Path(__file__).resolve().parent
NOW = datetime(2024, 1, 15, tzinfo=UTC)
REP, CHAIN = hopper()
RAW = bytes.fromhex(REP.decode().strip())
RIM = legacy_rims()[0]
ORIG = _verify_rim(RIM, now=NOW)


@pytest.mark.fuzz
def test_atheris_short_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "seeds", corpus)
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(  # noqa: S603 - fixed argv, our own harness
        [sys.executable, str(HERE / "fuzz_gpu.py"), "-runs=4000", "-seed=1", "-max_len=24000",
         "-timeout=20", str(corpus)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Done 4000 runs" in out, out[-2000:]


def _only_ours(fn, *a) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*a)
    except AttestationError as exc:
        assert exc.reason in GPU_REASONS, exc.reason


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RAW) - 1), st.binary(min_size=0, max_size=8), st.integers(0, 3))
def test_hypothesis_report_splices(pos: int, patch: bytes, mode: int) -> None:
    if mode == 0:
        data = RAW[:pos] + patch + RAW[pos + len(patch):]
    elif mode == 1:
        data = RAW[:pos] + patch
    elif mode == 2:
        data = RAW[:pos] + patch + RAW[pos:]
    else:
        data = RAW[:pos] + RAW[pos + 1 + len(patch):]
    _only_ours(_verify, data, CHAIN, NOW, None, (), None)


@pytest.mark.fuzz
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RIM) - 1), st.binary(min_size=1, max_size=6))
def test_hypothesis_rim_splices(pos: int, patch: bytes) -> None:
    data = RIM[:pos] + patch + RIM[pos + len(patch):]
    try:
        got = _verify_rim(data, now=NOW)
    except AttestationError as exc:
        assert exc.reason in {"attest.gpu.rim", "attest.gpu.rim_expired"}, exc.reason
    else:  # only a change outside the signed content may pass; the golden values are intact
        assert got.measurements == ORIG.measurements
        assert got.colloquial_version == ORIG.colloquial_version
