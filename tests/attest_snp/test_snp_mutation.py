"""Mutation sweeps over real SEV-SNP evidence: every byte of the signed report region and of
every certificate's DER is flipped (two different flips), and each mutant must be rejected
with one of the verifier's own reason codes (never accepted, never a foreign exception)."""

from __future__ import annotations

import pytest
from snp_testlib import (
    GSG,
    NOW_GSG,
    NOW_VIRTEE,
    VIRTEE,
    gsg_report,
    gsg_vcek,
    pem_certs,
    virtee_report,
    virtee_vcek,
)
from weightseal.attest import AttestationError, _snp
from weightseal.attest._snp import verify_snp
from weightseal.attest._snp_certs import build_snp_cert_table

SNP_REASONS = {
    "attest.snp.parse",
    "attest.snp.chain",
    "attest.snp.signature",
    "attest.snp.tcb_mismatch",
    "attest.snp.chip_id",
    "attest.snp.binding",
    "attest.snp.expired",
    "attest.snp.product",
    "attest.snp.crl",
    "attest.snp.crl_expired",
    "attest.snp.revoked",
}
assert SNP_REASONS == set(_snp.SNP_REASONS)


def _rejected(report: bytes, certs: bytes, now: object) -> str:
    try:
        verify_snp(report, certs, now=now)
    except AttestationError as exc:
        assert exc.reason in SNP_REASONS, exc.reason
        assert "unexpected" not in str(exc), str(exc)  # the catch-all net was never needed
        return str(exc.reason)
    raise AssertionError("mutant accepted")


@pytest.mark.parametrize(
    "name,report,certs,now",
    [
        ("go-sev-guest", gsg_report(), gsg_vcek(), NOW_GSG),
        ("virtee", virtee_report(), virtee_vcek(), NOW_VIRTEE),
    ],
)
def test_every_report_byte_flip_is_rejected(name: str, report: bytes, certs: bytes, now: object) -> None:
    verify_snp(report, certs, now=now)  # the original verifies
    seen: dict[str, int] = {}
    for pos in range(len(report)):  # the whole report: signed region and signature/MBZ tail
        for mask in (0x01, 0xFF):
            m = bytearray(report)
            m[pos] ^= mask
            r = _rejected(bytes(m), certs, now)
            seen[r] = seen.get(r, 0) + 1
    # every field class fires somewhere, and the signature catches most
    assert {"attest.snp.parse", "attest.snp.signature", "attest.snp.tcb_mismatch", "attest.snp.chip_id"} <= set(seen)
    assert seen["attest.snp.signature"] > 1000


def _sweep_der(der: bytes, build: object, report: bytes, now: object) -> dict[str, int]:
    seen: dict[str, int] = {}
    for pos in range(len(der)):
        for mask in (0x01, 0xFF):
            m = bytearray(der)
            m[pos] ^= mask
            r = _rejected(report, build(bytes(m)), now)  # type: ignore[operator]
            seen[r] = seen.get(r, 0) + 1
    return seen


def test_every_vcek_der_byte_flip_is_rejected() -> None:
    seen = _sweep_der(gsg_vcek(), lambda d: d, gsg_report(), NOW_GSG)
    assert set(seen) <= {"attest.snp.chain", "attest.snp.expired", "attest.snp.parse"}
    assert seen["attest.snp.chain"] > 2000


def test_every_ask_and_ark_der_byte_flip_is_rejected() -> None:
    ask, ark = pem_certs(GSG / "ask_ark_milan.pem")
    vcek = virtee_vcek()
    # inside an extended-report certificate table, as the host would hand it over
    s1 = _sweep_der(ask, lambda d: build_snp_cert_table({"vcek": vcek, "ask": d, "ark": ark}), virtee_report(), NOW_VIRTEE)
    s2 = _sweep_der(ark, lambda d: build_snp_cert_table({"vcek": vcek, "ask": ask, "ark": d}), virtee_report(), NOW_VIRTEE)
    assert set(s1) | set(s2) <= {"attest.snp.chain", "attest.snp.parse"}


def test_turin_vcek_der_byte_flips_are_rejected() -> None:
    from datetime import UTC, datetime

    from weightseal.attest._snp_certs import verify_snp_endorsement

    der = (VIRTEE / "vcek_turin.der").read_bytes()
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert verify_snp_endorsement(der, now=now).product == "Turin"
    for pos in range(len(der)):
        m = bytearray(der)
        m[pos] ^= 0x01
        with pytest.raises(AttestationError) as ei:
            verify_snp_endorsement(bytes(m), now=now)
        assert ei.value.reason in SNP_REASONS
