"""The REAL Blackwell sample (an RTX PRO 6000 Blackwell Server Edition in CC mode, published by
confidential-containers/trustee; tests/data/attestation/PROVENANCE.md) reproduces every value its
source states (EXPECTED.md: the fixture notes and trustee's expected claims)."""

from __future__ import annotations

import hashlib

import pytest
from nvgpu_testlib import BLACKWELL, BLACKWELL_NONCE, HOPPER_NONCE, blackwell, hopper, rd
from weightseal.attest import AttestationError, NvidiaRimService, RimQuery, verify_gpu
from weightseal.attest._nvgpu import parse_gpu_report


def _reason(*a: object, **kw: object) -> str:
    with pytest.raises(AttestationError) as ei:
        verify_gpu(*a, **kw)  # type: ignore[arg-type]
    return ei.value.reason


def test_fixture_bytes_are_the_ones_described() -> None:
    rep, chain = blackwell()
    raw = bytes.fromhex(rep.decode().strip())
    assert len(raw) == 4140
    assert hashlib.sha256(raw).hexdigest() == "73c76d3e1b182f55ac88ca650dde7f58abcd8ff1eb32bb76ab8988203f047511"
    assert len(chain) == 4903
    assert hashlib.sha256(chain).hexdigest() == "fe1bf21df53094d452dd6d1727d93a1bc3f44e8a4d504ad83bbe5548290ffc38"


def test_real_blackwell_evidence_verifies_with_the_stated_values() -> None:
    rep, chain = blackwell()
    g = verify_gpu(rep, chain, expected_nonce=BLACKWELL_NONCE)
    assert g.architecture == "blackwell"
    assert (g.driver_version, g.vbios_version) == ("595.58.03", "98.02.81.00.01")
    assert g.nonce == BLACKWELL_NONCE
    assert int(g.ak_serial, 16) == 408762037488965241743361667085904172082023387885  # UEID
    assert g.fwid == bytes.fromhex(
        "9b92cc3e53b9265259e1abde163653288c2474fcafd8e5c0fd62ce9c9036fb62723fe3715b50f4ac27c68b62e2fd9240")
    assert len(g.measurements) == 64
    # trustee's expected claims
    assert (g.project, g.project_sku, g.chip_sku, g.board_id.hex()) == ("G153", "0210", "895", "52060000")
    assert g.opaque["chip_info"] == b"GB202\x00".hex()
    assert g.opaque["gpu_info"] == "b001000002000000" and g.opaque["cpr_info"] == "00000000"
    assert g.opaque["sys_enable_status"] == "0700" and g.opaque["project_sku_mod"] == "3000"
    assert g.opaque["feature_flag"] == "0000"  # SPT
    assert g.opaque["nvdec0_status"] == "aa"  # enabled
    assert g.opaque["opaque_data_version"] == "0100" and g.ppcie is False
    assert g.measurements[2].hex().startswith("2da1aa04") and g.measurements[2].hex().endswith("467e")
    assert g.measurements[9].hex().startswith("0eba0d77") and g.measurements[9].hex().endswith("b6e5")
    assert g.measurements[64].hex().startswith("ffebdd1c") and g.measurements[64].hex().endswith("fdb1")
    assert g.measurements[1] == bytes(48) and g.measurements[63] == bytes(48)
    counts = bytes.fromhex(g.opaque["measurement_count"])
    per_block = {i + 1: int.from_bytes(counts[4 * i:4 * i + 4], "little") for i in range(len(counts) // 4)}
    assert (per_block[2], per_block[4], per_block[9], per_block[19], per_block[1]) == (3, 4, 13, 148, 0)
    # no RIMs given: the measurements are not vouched for, so CC mode is not claimed
    assert g.measurements_verified is False and g.cc_enabled is None


def test_opaque_field_ids_are_the_listed_ones() -> None:
    rep, _chain = blackwell()
    ids = sorted({t for t, _v in parse_gpu_report(rep).opaque})
    assert ids == [3, 4, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 33, 34, 35, 36]


def test_negative_cases() -> None:
    rep, chain = blackwell()
    # trustee case3: the Provisioner ICA missing
    assert _reason(rep, rd(BLACKWELL / "derived" / "blackwell_cert_chain_case3.txt")) == "attest.gpu.chain"
    assert _reason(rep, chain, expected_nonce=HOPPER_NONCE) == "attest.gpu.nonce"
    # evidence and chain of different GPUs (and architectures)
    hrep, hchain = hopper()
    assert _reason(rep, hchain) in {"attest.gpu.signature", "attest.gpu.chain"}
    assert _reason(hrep, chain) in {"attest.gpu.signature", "attest.gpu.chain"}
    # reference values: the real ones pass, one changed digest fails
    g = verify_gpu(rep, chain)
    ref = {i: [m] for i, m in g.measurements.items()}
    assert verify_gpu(rep, chain, reference=ref).measurements_verified is True
    ref[9] = [bytes(48)]
    assert _reason(rep, chain, reference=ref) == "attest.gpu.measurement"


def test_rim_ids_for_the_real_blackwell_gpu() -> None:
    # NVIDIA's RIM ids for this GPU, as its verifier derives them (driver RIM named after the
    # chip in CHIP_INFO on Blackwell)
    rep, chain = blackwell()
    g = verify_gpu(rep, chain)
    q = RimQuery(g.architecture, g.driver_version, g.vbios_version, "GB202", g.project, g.project_sku, g.chip_sku)
    assert NvidiaRimService.driver_rim_id(q) == "NV_GPU_CC_DRIVER_GB202_595.58.03"
    assert NvidiaRimService.vbios_rim_id(q) == "NV_GPU_VBIOS_G153_0210_895_9802810001"

    seen: list[RimQuery] = []

    class Spy:
        def rims_for(self, gpu: RimQuery) -> tuple[bytes, bytes]:
            seen.append(gpu)
            raise AttestationError("no RIMs here", reason="attest.gpu.rim")

    assert _reason(rep, chain, rims=Spy()) == "attest.gpu.rim"
    assert seen == [q]  # the source is told the chip from the report's own CHIP_INFO
