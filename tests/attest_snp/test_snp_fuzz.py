"""Short fuzz runs for the SEV-SNP verifier: the atheris harness in a subprocess, and
hypothesis properties (only ``attest.snp.*`` errors escape; the certificate table roundtrips)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snp_testlib import NOW_GSG, gsg_report, gsg_vcek
from weightseal.attest import AttestationError, EvidenceParseError
from weightseal.attest._snp import verify_snp
from weightseal.attest._snp_certs import build_snp_cert_table, parse_snp_cert_table
from weightseal.attest._snp_report import parse_snp_report

HERE = Path(__file__).resolve().parent
REPORT = gsg_report()
VCEK = gsg_vcek()


@pytest.mark.fuzz
def test_atheris_harness_short_run() -> None:
    import atheris  # noqa: F401 - a dev dependency; fail loudly if it is missing

    proc = subprocess.run(  # noqa: S603 - our own harness, fixed argv
        [sys.executable, str(HERE / "fuzz_snp.py"), "-runs=4000", "-max_len=4096", "-seed=1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Done 4000 runs" in proc.stderr


def _only_snp_errors(fn: object, *args: object, **kw: object) -> None:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except AttestationError as exc:
        assert exc.reason.startswith("attest.snp."), exc.reason
        assert "unexpected" not in str(exc), str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=3000))
def test_random_reports_raise_parse_errors(data: bytes) -> None:
    with pytest.raises(EvidenceParseError):
        parse_snp_report(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x49F), st.integers(1, 255)), min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_edited_real_report_never_verifies(edits: list[tuple[int, int]]) -> None:
    buf = bytearray(REPORT)
    for pos, x in edits:
        buf[pos] ^= x
    with pytest.raises(AttestationError) as ei:
        verify_snp(bytes(buf), VCEK, now=NOW_GSG)
    assert ei.value.reason.startswith("attest.snp.") and "unexpected" not in str(ei.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_cert_blobs(data: bytes) -> None:
    _only_snp_errors(verify_snp, REPORT, data, now=NOW_GSG)
    _only_snp_errors(parse_snp_cert_table, data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["vcek", "vlek", "ask", "ark", "crl", "ecae0c0f-9502-43b1-afa2-0ae2e0d565b6"]),
        st.binary(min_size=1, max_size=200),
        max_size=6,
    )
)
def test_cert_table_roundtrip(entries: dict[str, bytes]) -> None:
    assert parse_snp_cert_table(build_snp_cert_table(entries)) == entries
