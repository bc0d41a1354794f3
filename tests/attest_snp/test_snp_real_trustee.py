"""More REAL SEV-SNP evidence, from confidential-containers/trustee's verifier test data
(tests/data/attestation/PROVENANCE.md, ``snp/trustee``): a VLEK-signed Milan report from AWS, a
Genoa report from an Azure confidential VM (inside its vTPM HCL report), two more Milan VCEK
reports, and two edited VCEKs.  Until these, the VLEK and Genoa paths were covered by synthetic
evidence only.  Values asserted are the ones trustee's tests check (chains to the Milan/Genoa
roots, report signatures, REPORTED_TCB equal to the certificate's) and ones that can be derived
independently of our verifier (Azure's REPORT_DATA = SHA-256 of the HCL variable data)."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime

import pytest
from snp_testlib import DATA
from weightseal.attest import (
    AttestationError,
    Policy,
    PolicyDenied,
    SnpCrlFile,
    evaluate,
    report_data,
)
from weightseal.attest._snp import verify_snp
from weightseal.attest._snp_certs import default_trust_roots, verify_snp_endorsement

T = DATA / "trustee"
NOW = datetime(2025, 6, 1, tzinfo=UTC)  # inside every certificate's validity (the VLEK: 2024-12-10 .. 2025-12-10)


def rd(rel: str) -> bytes:
    return (T / rel).read_bytes()


def genoa_hcl() -> bytes:
    return bytes(json.loads(rd("az-snp-vtpm/evidence-genoa.json"))["report"])


def hcl_user_data_hash(hcl: bytes) -> bytes:
    """Azure's binding, computed from the HCL report itself: after the header (0x20) and the
    1184-byte SNP report comes the IGVM request data (u32 size, version, report type, hash
    type, variable-data size) and the variable data whose SHA-256 is REPORT_DATA[0:32]."""
    off = 0x20 + 1184
    _size, _ver, _rtype, htype, vsize = struct.unpack_from("<5I", hcl, off)
    assert htype == 1  # SHA-256
    return hashlib.sha256(hcl[off + 20: off + 20 + vsize]).digest()


def _reason(fn, *a, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return ei.value.reason


def test_vlek_signed_report_from_aws() -> None:
    c = verify_snp(rd("snp/test-vlek-report.bin"), rd("snp/test-vlek.der"), now=NOW)
    assert (c.signing_key, c.product, c.version) == ("vlek", "Milan", 3)
    assert (c.reported_tcb.bootloader, c.reported_tcb.tee, c.reported_tcb.snp, c.reported_tcb.microcode) == (4, 0, 24, 217)
    assert c.mask_chip_id is True and c.chip_id == bytes(64)  # the host masks CHIP_ID
    assert (c.cpuid_fam_id, c.cpuid_mod_id) == (0x19, 0x01)
    end = verify_snp_endorsement(rd("snp/test-vlek.der"), now=NOW)
    assert (end.key_type, end.csp_id) == ("vlek", "CN=cc-us-east-2.amazonaws.com")
    assert end.not_after == datetime(2025, 12, 10, 22, 14, 21, tzinfo=UTC)
    # the VLEK chains to the pinned ASVK, never to the ASK
    assert default_trust_roots().products["Milan"].asvk is not None
    # a year's validity: before and after it the chain is refused
    assert _reason(verify_snp, rd("snp/test-vlek-report.bin"), rd("snp/test-vlek.der"),
                   now=datetime(2025, 12, 11, tzinfo=UTC)) == "attest.snp.expired"
    # the VLEK report with a VCEK, and a VCEK report with the VLEK: refused
    assert _reason(verify_snp, rd("snp/test-vlek-report.bin"), rd("snp/test-vcek.der"), now=NOW) == "attest.snp.chain"
    assert _reason(verify_snp, rd("snp/test-report.bin"), rd("snp/test-vlek.der"), now=NOW) == "attest.snp.chain"


def test_vlek_evidence_under_policy() -> None:
    c = verify_snp(rd("snp/test-vlek-report.bin"), rd("snp/test-vlek.der"), now=NOW)
    base = {"platform": "snp", "measurements": [c.measurement.hex()], "vmpl": [c.vmpl]}

    def decide(**rules: object) -> str:
        pol = Policy.from_dict({"version": 1, "model_versions": [1], "profiles": [{**base, **rules}]})
        try:
            evaluate(pol, [c], model_version=1, allow_mock=False)
        except PolicyDenied as exc:
            return exc.reason
        return "allowed"

    assert c.vmpl == 1  # a guest running above VMPL0 (an SVSM/paravisor below it)
    assert decide() == "allowed"
    assert decide(signing_keys=["vcek"]) == "policy.signing_key"
    assert decide(vmpl=[0]) == "policy.vmpl"
    assert decide(chip_ids=["00" * 64]) == "allowed"  # masked: the all-zero CHIP_ID is what is reported
    assert decide(min_tcb={"bootloader": 4, "tee": 0, "snp": 25, "microcode": 217}) == "policy.tcb"


def test_genoa_report_from_azure() -> None:
    hcl = genoa_hcl()
    assert hcl[:4] == b"HCLA"
    expected = hcl_user_data_hash(hcl) + bytes(32)
    c = verify_snp(hcl, rd("az-snp-vtpm/vcek-genoa.pem"), now=NOW, expected_report_data=expected)
    assert (c.product, c.product_name, c.version, c.signing_key, c.vmpl) == ("Genoa", "Genoa", 3, "vcek", 0)
    assert (c.cpuid_fam_id, c.cpuid_mod_id) == (0x19, 0x11)
    assert (c.reported_tcb.bootloader, c.reported_tcb.tee, c.reported_tcb.snp, c.reported_tcb.microcode) == (10, 0, 23, 84)
    # a weightseal release binding cannot be met: the paravisor chose REPORT_DATA (README: Azure)
    ours = report_data(b"\x01" * 32, "llama", b"\x02" * 32)
    assert _reason(verify_snp, hcl, rd("az-snp-vtpm/vcek-genoa.pem"), now=NOW,
                   expected_report_data=ours) == "attest.snp.binding"
    # the Genoa report with a Milan VCEK, or named as Milan: refused
    assert _reason(verify_snp, hcl, rd("snp/test-vcek.der"), now=NOW) in {"attest.snp.product", "attest.snp.chain"}
    assert _reason(verify_snp, hcl, rd("az-snp-vtpm/vcek-genoa.pem"), now=NOW, product="Milan") == "attest.snp.product"


def test_genoa_report_with_amds_real_genoa_crl() -> None:
    # AMD's Genoa ARK CRL (snp/openpcc) lists 0x020001, not the pinned ASK 0x020002 that signed
    # this VCEK: the revocation check passes, end to end, on real evidence and a real CRL
    crl = SnpCrlFile(DATA / "openpcc" / "amd_genoa_crl.pem")
    c = verify_snp(genoa_hcl(), rd("az-snp-vtpm/vcek-genoa.pem"), now=NOW, crl=crl)
    assert c.crl_checked is True and c.product == "Genoa"
    late = datetime(2025, 11, 4, tzinfo=UTC)  # VCEK valid, CRL past nextUpdate
    assert _reason(verify_snp, genoa_hcl(), rd("az-snp-vtpm/vcek-genoa.pem"), now=late, crl=crl) == "attest.snp.crl_expired"
    milan_crl = SnpCrlFile(DATA / "openpcc" / "amd_milan_crl.pem")
    assert _reason(verify_snp, genoa_hcl(), rd("az-snp-vtpm/vcek-genoa.pem"), now=NOW, crl=milan_crl) == "attest.snp.crl"


@pytest.mark.parametrize("report,certs", [("snp/test-report.bin", "snp/test-vcek.der"),
                                          ("az-snp-vtpm/hcl-report.bin", "az-snp-vtpm/vcek.pem")])
def test_more_milan_vcek_reports(report: str, certs: str) -> None:
    data = rd(report)
    expected = hcl_user_data_hash(data) + bytes(32) if data[:4] == b"HCLA" else None
    c = verify_snp(data, rd(certs), now=NOW, expected_report_data=expected)
    assert (c.product, c.product_name, c.signing_key, c.version) == ("Milan", "Milan-B0", "vcek", 2)
    assert (c.reported_tcb.bootloader, c.reported_tcb.tee, c.reported_tcb.snp, c.reported_tcb.microcode) == (3, 0, 8, 115)
    # Azure's vcek.pem carries the VCEK, then the ASK and ARK: accepted only because they are
    # byte-identical to the pinned ones
    end = verify_snp_endorsement(rd(certs), now=NOW)
    assert end.product == "Milan" and end.key_type == "vcek"


def test_trustee_negative_cases() -> None:
    report = bytearray(rd("snp/test-report.bin"))
    vcek = rd("snp/test-vcek.der")
    # trustee: one byte of the signed body changed -> signature; REPORTED_TCB (byte 384) changed
    # -> no longer the certificate's TCB
    bad = bytearray(report)
    bad[42] += 1
    assert _reason(verify_snp, bytes(bad), vcek, now=NOW) == "attest.snp.signature"
    bad = bytearray(report)
    bad[384] += 1
    assert _reason(verify_snp, bytes(bad), vcek, now=NOW) == "attest.snp.tcb_mismatch"
    # trustee's two edited VCEKs (extensions re-encoded, signature not re-made): refused
    for edited in ("snp/test-vcek-invalid-legacy.der", "snp/test-vcek-invalid-new.der"):
        assert _reason(verify_snp, bytes(report), rd(edited), now=NOW) == "attest.snp.chain"
    # and the VCEK itself with byte 42 changed (trustee: check_vcek_signature_failure)
    v = bytearray(vcek)
    v[42] += 1
    assert _reason(verify_snp, bytes(report), bytes(v), now=NOW) in {"attest.snp.chain", "attest.snp.parse"}
