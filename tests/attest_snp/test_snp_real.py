"""SEV-SNP verifier against REAL evidence (go-sev-guest and virtee/sev samples, see
tests/data/attestation/PROVENANCE.md) and the values EXPECTED.md lists for them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from snp_testlib import (
    GSG,
    NOW_GSG,
    NOW_TURIN,
    NOW_VIRTEE,
    VIRTEE,
    gsg_report,
    gsg_vcek,
    pem_certs,
    read,
    virtee_report,
    virtee_report_hex,
    virtee_vcek,
)
from weightseal.attest import (
    AttestationError,
    BindingError,
    CertificateChainError,
    ClaimsError,
    EvidenceParseError,
    SignatureError,
    SnpTcb,
    TcbError,
)
from weightseal.attest._snp import decode_tcb, verify_snp
from weightseal.attest._snp_certs import (
    build_snp_cert_table,
    default_trust_roots,
    parse_snp_cert_table,
    verify_snp_endorsement,
)
from weightseal.attest._snp_report import parse_snp_report

GSG_CHIP = bytes.fromhex(
    "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"
)
GSG_MEAS = bytes.fromhex(
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
)
VIRTEE_MEAS = bytes.fromhex(
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
)


def _gsg(**kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("now", NOW_GSG)
    return verify_snp(gsg_report(), gsg_vcek(), **kw)


def _virtee(report: bytes | None = None, certs: bytes | None = None, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("now", NOW_VIRTEE)
    return verify_snp(
        virtee_report_hex() if report is None else report,
        virtee_vcek() if certs is None else certs,
        **kw,
    )


# --------------------------------------------------------------------------- positive: go-sev-guest


def test_gsg_claims_match_expected() -> None:
    c = _gsg(product="Milan-B0")
    assert c.version == 2 and c.product == "Milan" and c.product_name == "Milan-B0"
    assert c.signing_key == "vcek"
    assert c.report_data == bytes.fromhex("0102030405") + bytes(59)
    assert c.host_data == bytes(32) and c.family_id == bytes(16) and c.image_id == bytes(16)
    assert c.report_id.hex() == "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a"
    assert c.report_id_ma == b"\xff" * 32
    assert c.measurement == GSG_MEAS
    assert c.chip_id == GSG_CHIP
    assert c.policy == 0xB0000
    assert (c.debug, c.smt_allowed, c.migrate_ma, c.single_socket) == (True, True, False, False)
    assert (c.abi_major, c.abi_minor) == (0, 0)
    want_tcb = SnpTcb(raw=4901323769462652930, bootloader=2, tee=0, snp=5, microcode=68, fmc=None)
    assert c.reported_tcb == want_tcb == c.current_tcb == c.committed_tcb == c.launch_tcb
    assert c.reported_tcb.raw == 0x4405000000000002
    assert (c.current_major, c.current_minor, c.current_build) == (1, 49, 3)
    assert (c.committed_major, c.committed_minor, c.committed_build) == (1, 49, 3)
    assert c.vmpl == 0 and c.platform_info == 1 and c.guest_svn == 0
    assert c.author_key_en is False and c.mask_chip_id is False
    assert c.id_key_digest == bytes(48) and c.author_key_digest == bytes(48)
    assert c.signature_algo == 1
    assert c.cpuid_fam_id is None and c.launch_mit_vector is None
    d = c.to_dict()
    assert d["measurement"] == GSG_MEAS.hex() and d["platform"] == "snp"


def test_gsg_with_pinned_chain_pem_bundle() -> None:
    certs = gsg_vcek() + read(GSG / "ask_ark_milan.pem")
    assert verify_snp(gsg_report(), certs, now=NOW_GSG).measurement == GSG_MEAS


def test_gsg_vcek_as_pem() -> None:
    import base64
    import textwrap

    b64 = "\n".join(textwrap.wrap(base64.b64encode(gsg_vcek()).decode(), 64))
    pem = f"-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n".encode()
    assert verify_snp(gsg_report(), pem, now=NOW_GSG).chip_id == GSG_CHIP


def test_gsg_chain_alone_verifies_to_pinned_roots() -> None:
    end = verify_snp_endorsement(gsg_vcek() + read(GSG / "ask_ark_milan.pem"), now=NOW_GSG)
    assert (end.product, end.product_name, end.key_type) == ("Milan", "Milan-B0", "vcek")
    assert (end.bootloader, end.tee, end.snp, end.microcode, end.fmc) == (2, 0, 5, 68, None)
    assert end.hwid == GSG_CHIP


def test_gsg_binding() -> None:
    good = bytes.fromhex("0102030405") + bytes(59)
    assert _gsg(expected_report_data=good).report_data == good
    for bad in (bytes(63) + b"\x01", bytes(62) + b"\x01\x00"):
        with pytest.raises(BindingError) as ei:
            _gsg(expected_report_data=bad)
        assert ei.value.reason == "attest.snp.binding"


def test_gsg_product_checks() -> None:
    assert _gsg(product="milan").product == "Milan"
    for bad, reason in (("Genoa", "attest.snp.product"), ("Turin", "attest.snp.product"), ("Milan-B1", "attest.snp.product")):
        with pytest.raises(ClaimsError) as ei:
            _gsg(product=bad)
        assert ei.value.reason == reason
    with pytest.raises(ClaimsError) as ei:
        _gsg(product="Venice")
    assert ei.value.reason == "attest.snp.product"


def test_gsg_expired_and_not_yet_valid() -> None:
    for when in (datetime(2022, 9, 23, tzinfo=UTC), datetime(2029, 9, 25, tzinfo=UTC), datetime(2053, 7, 1, tzinfo=UTC)):
        with pytest.raises(CertificateChainError) as ei:
            _gsg(now=when)
        assert ei.value.reason == "attest.snp.expired"
    # naive datetimes are taken as UTC
    assert _gsg(now=datetime(2023, 1, 1)).vmpl == 0


# --------------------------------------------------------------------------- positive: virtee


def test_virtee_claims_match_expected() -> None:
    c = _virtee()
    assert c.version == 2 and c.product == "Milan" and c.product_name == "Milan-B0"
    assert c.policy == 0x30000
    assert (c.debug, c.smt_allowed, c.migrate_ma, c.single_socket) == (False, True, False, False)
    assert c.measurement == VIRTEE_MEAS
    assert c.report_data.hex().startswith("d447b55d") and c.report_data.hex().endswith("93ebfd")
    assert c.chip_id.hex().startswith("d49554ec717f4e5b") and c.chip_id.hex().endswith("1eb6")
    assert c.reported_tcb.raw == 0x7308000000000003
    assert (c.reported_tcb.bootloader, c.reported_tcb.tee, c.reported_tcb.snp, c.reported_tcb.microcode) == (3, 0, 8, 115)
    assert (c.current_major, c.current_minor, c.current_build) == (1, 52, 4)
    assert c.vmpl == 0


def test_virtee_hex_and_binary_agree() -> None:
    a = _virtee()
    b = _virtee(report=virtee_report())
    c = _virtee(report=virtee_report_hex().lower() + b"\n")
    assert a == b == c


def test_virtee_with_cert_chain_and_builtin() -> None:
    chain = read(VIRTEE / "cert_chain_milan")
    assert _virtee(certs=virtee_vcek() + chain).measurement == VIRTEE_MEAS
    builtin = read(VIRTEE / "builtin" / "milan_ask.pem") + read(VIRTEE / "builtin" / "milan_ark.pem")
    assert _virtee(certs=virtee_vcek() + builtin).measurement == VIRTEE_MEAS


def test_virtee_neg_report_byte21() -> None:
    rep = bytearray(virtee_report())
    rep[21] ^= 0x80
    with pytest.raises(SignatureError) as ei:
        _virtee(report=bytes(rep))
    assert ei.value.reason == "attest.snp.signature"


def test_virtee_neg_vcek_byte40() -> None:
    vcek = bytearray(virtee_vcek())
    vcek[40] ^= 0xFF
    with pytest.raises(CertificateChainError) as ei:
        _virtee(certs=bytes(vcek))
    assert ei.value.reason == "attest.snp.chain"


def test_cert_chain_milan_is_ask_then_ark() -> None:
    ask, ark = pem_certs(VIRTEE / "cert_chain_milan")
    roots = default_trust_roots().products["Milan"]
    assert ask == roots.ask_der and ark == roots.ark_der


def test_turin_vcek_chain() -> None:
    end = verify_snp_endorsement(
        read(VIRTEE / "vcek_turin.der") + read(VIRTEE / "cert_chain_turin"), now=NOW_TURIN
    )
    assert (end.product, end.product_name, end.key_type) == ("Turin", "Turin", "vcek")
    assert end.fmc == 0 and end.microcode == 9 and (end.bootloader, end.tee, end.snp) == (0, 0, 0)
    assert end.hwid is not None and len(end.hwid) == 8
    # The pinned Turin ASK alone is enough; the Milan chain is not.
    assert verify_snp_endorsement(read(VIRTEE / "vcek_turin.der"), now=NOW_TURIN).product == "Turin"
    with pytest.raises(CertificateChainError) as ei:
        verify_snp_endorsement(read(VIRTEE / "vcek_turin.der") + read(VIRTEE / "cert_chain_milan"), now=NOW_TURIN)
    assert ei.value.reason == "attest.snp.chain"
    with pytest.raises(ClaimsError) as ei2:
        verify_snp_endorsement(read(VIRTEE / "vcek_turin.der"), now=NOW_TURIN, product="Genoa")
    assert ei2.value.reason == "attest.snp.product"


def test_turin_tcb_layout() -> None:
    t = decode_tcb(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "Turin")
    assert (t.fmc, t.bootloader, t.tee, t.snp, t.microcode) == (1, 2, 3, 4, 9)
    m = decode_tcb(0x7308000000000003, "Genoa")
    assert (m.fmc, m.bootloader, m.tee, m.snp, m.microcode) == (None, 3, 0, 8, 115)


# --------------------------------------------------------------------------- pinned roots


def test_pinned_roots_are_amd_and_consistent() -> None:
    roots = default_trust_roots()
    assert sorted(roots.products) == ["Genoa", "Milan", "Turin"]
    import hashlib

    fp = {p: hashlib.sha256(r.ark_der).hexdigest()[:16] for p, r in roots.products.items()}
    assert fp == {"Milan": "69d063b45344d26a", "Genoa": "4c6598d19c18719c", "Turin": "1f084161a44bb6d9"}
    for p, r in roots.products.items():
        cn = {c.subject.rfc4514_string().split(",")[0] for c in (r.ark, r.ask, r.asvk) if c is not None}
        assert cn == {f"CN=ARK-{p}", f"CN=SEV-{p}", f"CN=SEV-VLEK-{p}"}
    # Every KDS chain in the test data equals the pinned copies.
    for name, prod in (
        ("ask_ark_milan.pem", "Milan"), ("ask_ark_genoa.pem", "Genoa"), ("ask_ark_turin_vcek.pem", "Turin"),
    ):
        ask, ark = pem_certs(GSG / name)
        assert (ask, ark) == (roots.products[prod].ask_der, roots.products[prod].ark_der)
    for name, prod in (
        ("ask_ark_milan_vlek.pem", "Milan"), ("ask_ark_genoa_vlek.pem", "Genoa"), ("ask_ark_turin_vlek.pem", "Turin"),
    ):
        asvk, ark = pem_certs(GSG / name)
        assert (asvk, ark) == (roots.products[prod].asvk_der, roots.products[prod].ark_der)


def test_supplied_ark_that_differs_is_rejected() -> None:
    # A Genoa ARK offered with a Milan VCEK, and a Milan VLEK ASVK offered as "ASK" that is not
    # the one pinned for the chain, are both refused: supplied roots are never trusted.
    genoa = read(GSG / "ask_ark_genoa.pem")
    with pytest.raises(CertificateChainError) as ei:
        verify_snp(gsg_report(), gsg_vcek() + genoa, now=NOW_GSG)
    assert ei.value.reason == "attest.snp.chain"
    # A self-made "ARK-Milan" lookalike is refused too.
    from snp_testlib import pem, synth_product

    fake_ark = pem(synth_product("Milan").ark)
    with pytest.raises(CertificateChainError) as ei:
        verify_snp(gsg_report(), gsg_vcek() + fake_ark, now=NOW_GSG)
    assert ei.value.reason == "attest.snp.chain"
    # The Milan ASVK (pinned, same product) alongside a VCEK is tolerated: it is a pinned cert.
    assert verify_snp(gsg_report(), gsg_vcek() + read(GSG / "ask_ark_milan_vlek.pem"), now=NOW_GSG).vmpl == 0


def test_vlek_chains_asvk_to_ark() -> None:
    # No real VLEK leaf is in the public data: check the ASVK->ARK links of the pinned store
    # and that a VCEK is not accepted where the report says VLEK.
    roots = default_trust_roots()
    for p in ("Milan", "Genoa", "Turin"):
        r = roots.products[p]
        assert r.asvk is not None and r.asvk.issuer == r.ark.subject
        assert dict(r.intermediates())["vlek"] is r.asvk
    rep = bytearray(gsg_report())
    rep[0x48] |= 1 << 2  # SIGNING_KEY = VLEK
    with pytest.raises(CertificateChainError) as ei:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.chain"


# --------------------------------------------------------------------------- cert table


def test_extended_report_cert_table_roundtrip() -> None:
    ask, ark = pem_certs(GSG / "ask_ark_milan.pem")
    table = build_snp_cert_table({"vcek": gsg_vcek(), "ask": ask, "ark": ark})
    parsed = parse_snp_cert_table(table)
    assert parsed == {"vcek": gsg_vcek(), "ask": ask, "ark": ark}
    # entries are 24 bytes: GUID (RFC 4122 order), offset, length; then an all-zero entry
    assert table[:16] == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    assert table[72:96] == bytes(24)
    assert verify_snp(gsg_report(), table, now=NOW_GSG).measurement == GSG_MEAS
    # page-padded auxblob (zeros after the certs), VCEK only, and a VLEK entry we do not need
    assert verify_snp(gsg_report(), table + bytes(3 * 4096 - len(table)), now=NOW_GSG).vmpl == 0
    only = build_snp_cert_table({"vcek": gsg_vcek()})
    assert verify_snp(gsg_report(), only, now=NOW_GSG).vmpl == 0


def test_cert_table_mixed_endian_guid_and_unknown_entries() -> None:
    import struct
    import uuid

    vcek = gsg_vcek()
    other = b"platform-info-blob"
    g_vcek = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes_le
    g_other = uuid.UUID("ecae0c0f-9502-43b1-afa2-0ae2e0d565b6").bytes
    hdr = 3 * 24
    table = (
        struct.pack("<16sII", g_other, hdr, len(other))
        + struct.pack("<16sII", g_vcek, hdr + len(other), len(vcek))
        + bytes(24)
        + other
        + vcek
    )
    parsed = parse_snp_cert_table(table)
    assert parsed["vcek"] == vcek and parsed["ecae0c0f-9502-43b1-afa2-0ae2e0d565b6"] == other
    assert verify_snp(gsg_report(), table, now=NOW_GSG).chip_id == GSG_CHIP


def test_cert_table_without_leaf_is_chain_error() -> None:
    ask, ark = pem_certs(GSG / "ask_ark_milan.pem")
    table = build_snp_cert_table({"ask": ask, "ark": ark})
    with pytest.raises(CertificateChainError) as ei:
        verify_snp(gsg_report(), table, now=NOW_GSG)
    assert ei.value.reason == "attest.snp.chain"


@pytest.mark.parametrize(
    "blob",
    [
        bytes(23),  # no terminator
        b"\x01" * 24,  # entry out of range, no terminator
        build_snp_cert_table({"vcek": b"x" * 10})[:-11],  # truncated body
        (b"\x63" + bytes(15)) + (1000).to_bytes(4, "little") + (5).to_bytes(4, "little") + bytes(24),
    ],
)
def test_cert_table_garbage_is_parse_error(blob: bytes) -> None:
    with pytest.raises(EvidenceParseError) as ei:
        parse_snp_cert_table(blob)
    assert ei.value.reason == "attest.snp.parse"


def test_missing_certs_is_chain_error() -> None:
    for certs in (b"", b"\n", read(GSG / "ask_ark_milan.pem")):
        with pytest.raises(CertificateChainError) as ei:
            verify_snp(gsg_report(), certs, now=NOW_GSG)
        assert ei.value.reason == "attest.snp.chain"


def test_wrong_vcek_for_report() -> None:
    # virtee's VCEK with go-sev-guest's report: TCB differs first
    with pytest.raises(TcbError) as ei:
        verify_snp(gsg_report(), virtee_vcek(), now=NOW_VIRTEE)
    assert ei.value.reason == "attest.snp.tcb_mismatch"


# --------------------------------------------------------------------------- report mutations


def test_reported_tcb_vs_current_tcb() -> None:
    rep = bytearray(gsg_report())
    rep[0x180] ^= 1  # reported_tcb.bl: the VCEK no longer matches
    with pytest.raises(TcbError) as ei:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.tcb_mismatch"
    rep = bytearray(gsg_report())
    rep[0x38] ^= 1  # current_tcb is not what the VCEK certifies: only the signature catches it
    with pytest.raises(SignatureError):
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)


def test_chip_id_mismatch_and_mask() -> None:
    rep = bytearray(gsg_report())
    rep[0x1DF] ^= 0x03  # EXPECTED.md: chip id ending ...5e
    with pytest.raises(ClaimsError) as ei:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.chip_id"
    rep = bytearray(gsg_report())
    rep[0x48] |= 2  # MASK_CHIP_KEY does not skip the chip-id check; the signed bytes changed
    with pytest.raises(SignatureError) as ei2:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei2.value.reason == "attest.snp.signature"


@pytest.mark.parametrize(
    "off,val",
    [
        (0x00, 1), (0x00, 6), (0x00, 0), (0x01, 1),  # version
        (0x0A, 0),  # policy bit 17 cleared (0xB0000 -> 0x90000)
        (0x34, 2),  # signature algo
        (0x30, 4),  # vmpl
        (0x48, 0x1C),  # signing key 7 = none
        (0x48, 0x08),  # signing key 2 reserved
        (0x49, 1),  # signer info reserved bits
        (0x4C, 1), (0x18C, 1), (0x1EB, 1), (0x1EF, 1), (0x208, 1), (0x29F, 1), (0x330, 1), (0x49F, 1),
    ],
)
def test_report_field_rules_are_parse_errors(off: int, val: int) -> None:
    rep = bytearray(gsg_report())
    rep[off] = val
    with pytest.raises(EvidenceParseError) as ei:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.parse"


def test_signature_component_high_bytes() -> None:
    rep = bytearray(gsg_report())
    rep[0x2A0 + 71] = 1  # R >= 2^384
    with pytest.raises(SignatureError) as ei:
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.signature"
    rep = bytearray(gsg_report())
    rep[0x2E8:0x330] = bytes(72)  # S = 0
    with pytest.raises(SignatureError):
        verify_snp(bytes(rep), gsg_vcek(), now=NOW_GSG)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", gsg_report()[:-1], b"zz" * 1184, "é" * 10, b"0" * 2367, bytes(10_000),
     (22).to_bytes(4, "little") + (1184).to_bytes(4, "little") + bytes(24) + gsg_report()],
)
def test_truncated_or_garbage_report(data: bytes | str) -> None:
    with pytest.raises(EvidenceParseError) as ei:
        verify_snp(data, gsg_vcek(), now=NOW_GSG)
    assert ei.value.reason == "attest.snp.parse"
    with pytest.raises(EvidenceParseError):
        parse_snp_report(data)


def test_parse_exposes_named_fields() -> None:
    r = parse_snp_report(gsg_report())
    assert (r.version, r.signing_key, r.signing_key_name, r.vmpl) == (2, 0, "vcek", 0)
    assert r.reported_tcb == 0x4405000000000002 and r.signed_bytes == gsg_report()[:0x2A0]
    assert r.cpuid_product is None and r.sig_r > 0 and r.sig_s > 0
    assert parse_snp_report(virtee_report_hex()).measurement == VIRTEE_MEAS


def test_only_attestation_errors_escape_for_odd_types() -> None:
    for bad in (None, 12, ["x"]):
        with pytest.raises(AttestationError):
            verify_snp(bad, gsg_vcek(), now=NOW_GSG)


def test_cert_input_forms() -> None:
    import base64

    ask, ark = pem_certs(GSG / "ask_ark_milan.pem")
    # concatenated DER: VCEK, ASK, ARK
    assert verify_snp(gsg_report(), gsg_vcek() + ask + ark, now=NOW_GSG).vmpl == 0
    # PEM with commentary around the blocks (like the pinned root files) and CRLF
    b64 = base64.encodebytes(gsg_vcek()).replace(b"\n", b"\r\n")
    text = b"# VCEK for the go-sev-guest sample\r\n-----BEGIN CERTIFICATE-----\r\n" + b64 + b"-----END CERTIFICATE-----\r\n"
    assert verify_snp(gsg_report(), text + (GSG / "ask_ark_milan.pem").read_bytes(), now=NOW_GSG).vmpl == 0
    # pinned root files shipped in the package, as a supplied chain
    from importlib import resources

    roots = resources.files("weightseal.attest.roots")
    shipped = roots.joinpath("amd_milan_ask.pem").read_bytes() + roots.joinpath("amd_milan_ark.pem").read_bytes()
    assert shipped.startswith(b"# AMD SEV-SNP pinned")
    assert verify_snp(gsg_report(), gsg_vcek() + shipped, now=NOW_GSG).vmpl == 0
    # garbage after the DER leaf
    with pytest.raises(CertificateChainError):
        verify_snp(gsg_report(), gsg_vcek() + b"junk", now=NOW_GSG)


def test_odd_cert_types() -> None:
    with pytest.raises(CertificateChainError):
        verify_snp(gsg_report(), None, now=NOW_GSG)
    for bad in ("text", 5, ["x"]):
        with pytest.raises(EvidenceParseError) as ei:
            verify_snp(gsg_report(), bad, now=NOW_GSG)
        assert ei.value.reason == "attest.snp.parse" and "unexpected" not in str(ei.value)


@pytest.mark.parametrize("wrap", ["trailing", "msg_report_rsp", "azure_hcl", "hex_trailing"])
def test_report_envelopes_real_guests_hand_out(wrap: str) -> None:
    """configfs-tsm gives the bare report; /dev/sev-guest a MSG_REPORT_RSP (status, size,
    reserved, report); Azure an HCL report with the SNP report at 0x20; tools append bytes.
    The same signed report must verify to the same claims in every envelope."""
    rep = gsg_report()
    wrapped: bytes = {
        "trailing": rep + b"\x00" * 20,
        "msg_report_rsp": (0).to_bytes(4, "little") + (1184).to_bytes(4, "little") + bytes(24) + rep + bytes(64),
        "azure_hcl": b"HCLA" + bytes(28) + rep + b"runtime data follows",
        "hex_trailing": (rep + bytes(8)).hex().encode(),
    }[wrap]
    assert verify_snp(wrapped, gsg_vcek(), now=NOW_GSG) == verify_snp(rep, gsg_vcek(), now=NOW_GSG)
