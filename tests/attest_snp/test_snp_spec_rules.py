"""SEV-SNP spec rules found while running the verifier against real public evidence (Azure,
GCP, AWS, Oak, trustee, Constellation, veraison samples; not copied here).  Every case is
rebuilt from hand-made bytes or the SYNTHETIC AMD-like hierarchy of ``snp_testlib``.

* MASK_CHIP_ID (host SNP_CONFIG switch) only zeroes CHIP_ID; KEY_INFO bit 1 is MASK_CHIP_KEY,
  a different switch (firmware does not sign: SIGNATURE is zero).  A VCEK-signed report with
  an all-zero CHIP_ID and MASK_CHIP_KEY=0 must verify; MASK_CHIP_KEY must not skip the hwID check.
* GUEST_POLICY bits 63:26 are reserved MBZ; bits 21..25 (CXL_ALLOW, MEM_AES_256_XTS, RAPL_DIS,
  CIPHERTEXT_HIDING_DRAM, PAGE_SWAP_DISABLE) are defined and carried raw.
* The VCEK hwID extension may be raw bytes (what KDS issues) or a DER OCTET STRING.
* TCB_VERSION layouts, per-version reserved ranges, CPUID and mitigation-vector fields.
"""

from __future__ import annotations

import struct

import pytest
from snp_testlib import (
    NOW_SYNTH,
    build_report,
    der,
    leaf_key,
    sign_report,
    synth_product,
    synth_roots,
    tcb_u64,
)
from weightseal.attest import (
    CertificateChainError,
    ClaimsError,
    EvidenceParseError,
    SignatureError,
)
from weightseal.attest._snp import decode_tcb, verify_snp
from weightseal.attest._snp_report import (
    POLICY_CIPHERTEXT_HIDING_DRAM,
    POLICY_PAGE_SWAP_DISABLE,
    POLICY_RAPL_DIS,
    parse_snp_report,
)

CHIP = bytes(range(1, 65))
TURIN_CHIP = bytes(range(1, 9)) + bytes(56)


def _tcb(product: str) -> int:
    return tcb_u64(product, fmc=1 if product == "Turin" else 0, bl=3, tee=1, snp=20, ucode=210)


def _vcek(product: str, hwid: bytes | None = None) -> bytes:
    h = hwid if hwid is not None else (TURIN_CHIP[:8] if product == "Turin" else CHIP)
    fmc = 1 if product == "Turin" else None
    leaf = synth_product(product).leaf("vcek", leaf_key(), hwid=h, fmc=fmc, bl=3, tee=1, snp=20, ucode=210)
    return der(leaf)


def _signed(product: str, **kw: object) -> bytes:
    kw.setdefault("tcb", _tcb(product))
    kw.setdefault("chip_id", TURIN_CHIP if product == "Turin" else CHIP)
    kw.setdefault("version", 5 if product == "Turin" else 3)
    return sign_report(build_report(product=product, **kw), leaf_key())  # type: ignore[arg-type]


def _verify(report: bytes, certs: bytes, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("now", NOW_SYNTH)
    kw.setdefault("trust_roots", synth_roots())
    return verify_snp(report, certs, **kw)


# --------------------------------------------------------------------------- MASK_CHIP_ID / KEY


@pytest.mark.parametrize("product,version", [("Milan", 2), ("Genoa", 3), ("Genoa", 5), ("Turin", 5)])
def test_masked_chip_id_vcek_report_verifies(product: str, version: int) -> None:
    """Regression: a VCEK-signed report whose CHIP_ID the host masked (all zeros) while KEY_INFO
    bit 1 is 0 used to fail with attest.snp.chip_id."""
    rep = _signed(product, version=version, mask_chip_id=True)
    raw = parse_snp_report(rep)
    assert raw.signer_info == 0 and raw.mask_chip_key is False
    assert raw.chip_id == bytes(64) and raw.mask_chip_id is True
    c = _verify(rep, _vcek(product))
    assert c.product == product and c.signing_key == "vcek"
    assert c.mask_chip_id is True and c.chip_id == bytes(64)


def test_mask_chip_id_is_not_key_info_bit1() -> None:
    rep = parse_snp_report(_signed("Genoa", mask_chip_key=True))
    assert rep.mask_chip_key is True and rep.mask_chip_id is False and rep.chip_id == CHIP
    rep2 = parse_snp_report(_signed("Genoa"))
    assert rep2.mask_chip_key is False and rep2.mask_chip_id is False


def test_mask_chip_key_does_not_skip_hwid_check() -> None:
    # Bit 1 set, a non-zero CHIP_ID of another chip, and a (synthetic) valid signature.
    rep = _signed("Genoa", mask_chip_key=True, chip_id=bytes(reversed(CHIP)))
    with pytest.raises(ClaimsError) as ei:
        _verify(rep, _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.chip_id"


def test_mask_chip_key_zero_signature_is_rejected() -> None:
    """What the firmware emits with MaskChipKey=1: SIGNATURE all zeros."""
    r = build_report(product="Genoa", tcb=_tcb("Genoa"), chip_id=CHIP, mask_chip_key=True)
    with pytest.raises(SignatureError) as ei:
        _verify(bytes(r), _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.signature"
    assert "MASK_CHIP_KEY" in str(ei.value)
    r2 = build_report(product="Genoa", tcb=_tcb("Genoa"), chip_id=CHIP)  # bit clear, unsigned
    with pytest.raises(SignatureError) as ei2:
        _verify(bytes(r2), _vcek("Genoa"))
    assert "all zeros" in str(ei2.value) and "MASK_CHIP_KEY" not in str(ei2.value)


def test_turin_chip_id_compares_first_8_bytes_only_and_masked_skips() -> None:
    c = _verify(_signed("Turin"), _vcek("Turin"))
    assert c.chip_id == TURIN_CHIP and c.mask_chip_id is False
    with pytest.raises(ClaimsError) as ei:
        _verify(_signed("Turin", chip_id=b"\x07" * 8 + bytes(56)), _vcek("Turin"))
    assert ei.value.reason == "attest.snp.chip_id"
    assert _verify(_signed("Turin", mask_chip_id=True), _vcek("Turin")).mask_chip_id is True


# --------------------------------------------------------------------------- GUEST_POLICY


@pytest.mark.parametrize("bit", [26, 27, 40, 63])
def test_policy_reserved_bits_are_rejected(bit: int) -> None:
    r = build_report(policy=(1 << 17) | (1 << bit))
    with pytest.raises(EvidenceParseError) as ei:
        parse_snp_report(bytes(r))
    assert ei.value.reason == "attest.snp.parse" and "63:26" in str(ei.value)


def test_policy_newer_defined_bits_are_accepted() -> None:
    pol = (1 << 17) | sum(1 << b for b in range(21, 26)) | (1 << 16)
    c = _verify(_signed("Turin", policy=pol), _vcek("Turin"))
    assert c.policy == pol and c.smt_allowed and not c.debug
    rep = parse_snp_report(_signed("Turin", policy=pol))
    assert rep.policy_bit(POLICY_RAPL_DIS) and rep.policy_bit(POLICY_CIPHERTEXT_HIDING_DRAM)
    assert rep.policy_bit(POLICY_PAGE_SWAP_DISABLE) and not rep.policy_bit(19)


def test_platform_info_bits_are_carried_raw() -> None:
    r = build_report()
    struct.pack_into("<Q", r, 0x40, 0xBF)  # SMT..ALIAS_CHECK, TIO and bit 6
    assert parse_snp_report(bytes(r)).platform_info == 0xBF


# --------------------------------------------------------------------------- hwID encoding


@pytest.mark.parametrize("product", ["Milan", "Turin"])
def test_hwid_as_der_octet_string_is_accepted(product: str) -> None:
    hw = TURIN_CHIP[:8] if product == "Turin" else CHIP
    wrapped = b"\x04" + bytes([len(hw)]) + hw
    c = _verify(_signed(product), _vcek(product, hwid=wrapped))
    assert c.product == product and c.chip_id[: len(hw)] == hw
    # the wrapped form is still compared against CHIP_ID
    with pytest.raises(ClaimsError) as ei:
        _verify(_signed(product), _vcek(product, hwid=b"\x04" + bytes([len(hw)]) + bytes(reversed(hw))))
    assert ei.value.reason == "attest.snp.chip_id"


@pytest.mark.parametrize(
    "hwid",
    [
        b"\x04\x3f" + CHIP[:63],  # wrong inner length
        b"\x04\x40" + CHIP + b"\x00",  # trailing byte
        b"\x0c\x40" + CHIP,  # not an OCTET STRING
        CHIP[:63],  # raw, too short
    ],
)
def test_malformed_hwid_is_chain_error(hwid: bytes) -> None:
    with pytest.raises(CertificateChainError) as ei:
        _verify(_signed("Genoa"), _vcek("Genoa", hwid=hwid))
    assert ei.value.reason == "attest.snp.chain" and "hwID" in str(ei.value)


# --------------------------------------------------------------------------- TCB / layout


def test_tcb_version_layouts() -> None:
    raw = int.from_bytes(bytes([0x11, 0x22, 0x33, 0x44, 0, 0, 0x55, 0x66]), "little")
    m = decode_tcb(raw, "Milan")
    assert (m.bootloader, m.tee, m.snp, m.microcode, m.fmc) == (0x11, 0x22, 0x55, 0x66, None)
    t = decode_tcb(raw, "Turin")  # FMC byte 0, BL 1, TEE 2, SNP 3, bytes 4..6 reserved, UCODE 7
    assert (t.fmc, t.bootloader, t.tee, t.snp, t.microcode) == (0x11, 0x22, 0x33, 0x44, 0x66)


def test_reported_tcb_not_current_tcb_on_turin() -> None:
    cur = tcb_u64("Turin", fmc=2, bl=4, tee=2, snp=25, ucode=220)
    c = _verify(_signed("Turin", current_tcb=cur), _vcek("Turin"))
    assert c.current_tcb.raw == cur and c.current_tcb.fmc == 2
    assert (c.reported_tcb.fmc, c.reported_tcb.snp) == (1, 20)


def test_cpuid_bytes_by_version() -> None:
    v2 = build_report(version=2)
    v2[0x188] = 0x19
    with pytest.raises(EvidenceParseError):  # reserved in v2
        parse_snp_report(bytes(v2))
    v3 = parse_snp_report(bytes(build_report(version=3, product="Turin")))
    assert (v3.cpuid_fam_id, v3.cpuid_mod_id, v3.cpuid_step, v3.cpuid_product) == (0x1A, 2, 0, "Turin")
    dense = parse_snp_report(bytes(build_report(version=3, cpuid=(0x1A, 0x11, 0))))
    assert dense.cpuid_product == "Turin"
    siena = parse_snp_report(bytes(build_report(version=3, cpuid=(0x19, 0xA0, 0))))
    assert siena.cpuid_product == "Genoa"
    v3bad = build_report(version=3)
    v3bad[0x18B] = 1
    with pytest.raises(EvidenceParseError):
        parse_snp_report(bytes(v3bad))


def test_mitigation_vectors_only_from_v5() -> None:
    v5 = parse_snp_report(bytes(build_report(version=5, mit=(0x1234, 0x5678))))
    assert (v5.launch_mit_vector, v5.current_mit_vector) == (0x1234, 0x5678)
    v3 = parse_snp_report(bytes(build_report(version=3)))
    assert (v3.launch_mit_vector, v3.current_mit_vector) == (None, None)
    bad = build_report(version=5)
    bad[0x208] = 1  # reserved after the mitigation vectors
    with pytest.raises(EvidenceParseError):
        parse_snp_report(bytes(bad))
