"""TDX quote verification on real quotes (go-tdx-guest samples), with the values and negative
cases listed in tests/data/attestation/EXPECTED.md."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from tdx_testlib import Q4, Q5, T4, T5, T2053, TDX_REASONS
from weightseal.attest import Evidence, Platform, TdxClaims
from weightseal.attest._errors import AttestationError, BindingError, CertificateChainError
from weightseal.attest._tdx import (
    parse_tdx_quote,
    verify_tdx,
    verify_tdx_evidence,
)


def _reason(quote: bytes, now: datetime = T4, **kw: object) -> str:
    with pytest.raises(AttestationError) as ei:
        verify_tdx(quote, now=now, **kw)  # type: ignore[arg-type]
    assert ei.value.reason in TDX_REASONS
    return ei.value.reason


def test_v4_quote_verifies_with_expected_values() -> None:
    c = verify_tdx(Q4, now=T4)
    assert isinstance(c, TdxClaims)
    assert c.platform is Platform.TDX
    assert c.quote_version == 4 and c.body_type == 2
    assert c.mr_seam.hex() == (
        "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656"
    )
    assert c.td_attributes.hex() == "0000004000000000"
    assert c.debug is False
    assert c.xfam.hex() == "e71a060000000000"
    assert c.mr_td.hex() == (
        "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"
    )
    assert c.mr_config_id == c.mr_owner == c.mr_owner_config == bytes(48)
    assert c.report_data.hex() == (
        "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545"
        "eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"
    )
    assert c.tee_tcb_svn.hex() == "03000400000000000000000000000000"
    assert c.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert c.qe_svn == 0 and c.pce_svn == 0
    assert c.pck_ppid.hex() == "089ddfdb9c0359c82a3bc7719239574e"
    assert c.fmspc.hex() == "50806f000000"
    assert c.pck_pcesvn == 11
    assert c.pck_cpusvn.hex() == "03030202020100020000000000000000"
    assert c.qe_report_isv_svn == 4
    assert c.tee_tcb_svn_2 is None and c.mr_service_td is None
    assert c.tcb_status is None and c.tcb_date is None and c.advisory_ids == ()
    assert len(c.rtmrs) == 4 and all(len(r) == 48 for r in c.rtmrs)
    d = c.to_dict()
    assert d["mr_td"] == c.mr_td.hex() and d["platform"] == "tdx"


def test_v4_parse_fields_and_trailing_bytes() -> None:
    q = parse_tdx_quote(Q4)
    assert q.length == 4935 and len(Q4) == 4974  # 39 bytes of text appended by go-tdx-guest
    assert Q4[q.length :] == b"\nextra bytes(only for testing purpose)\n"
    assert q.header.version == 4 and q.header.att_key_type == 2 and q.header.tee_type == 0x81
    assert len(q.signed_region) == 48 + 584
    assert q.qe_report.isvsvn == 4 and q.qe_report.isvprodid == 2
    assert q.qe_report.mrsigner.hex().startswith(
        "dc9e2a7c"
    ) and q.qe_report.mrsigner.hex().endswith("a8c5")
    assert len(q.qe_auth_data) == 32
    assert q.pck_chain_pem.count(b"BEGIN CERTIFICATE") == 3
    # the quote without its trailing bytes verifies identically
    assert verify_tdx(Q4[: q.length], now=T4) == verify_tdx(Q4, now=T4)


def test_v5_quote_verifies_with_expected_values() -> None:
    c = verify_tdx(Q5, now=T5)
    assert c.quote_version == 5 and c.body_type == 3
    assert c.tee_tcb_svn.hex().startswith("0b010400")
    assert c.mr_td.hex().startswith("7348651a") and c.mr_td.hex().endswith("f876")
    assert c.qe_report_isv_svn == 7
    assert c.fmspc.hex() == "90c06f000000"
    assert c.tee_tcb_svn_2 is not None and len(c.tee_tcb_svn_2) == 16
    assert c.mr_service_td is not None and len(c.mr_service_td) == 48
    q = parse_tdx_quote(Q5)
    assert q.length == len(Q5) and len(q.signed_region) == 48 + 6 + 648
    assert q.pck_chain_pem.endswith(b"-----END CERTIFICATE-----\n\x00")


def test_v5_pck_not_after_2033() -> None:
    from weightseal.attest._tdx_pki import parse_pem_chain

    leaf = parse_pem_chain(parse_tdx_quote(Q5).pck_chain_pem, reason="x")[0]
    assert leaf.not_valid_after_utc.date().isoformat() == "2033-01-27"
    assert verify_tdx(Q5, now=datetime(2033, 1, 1, tzinfo=UTC)).quote_version == 5
    assert _reason(Q5, now=datetime(2033, 2, 1, tzinfo=UTC)) == "attest.tdx.expired"


def test_v4_expired_2053() -> None:
    with pytest.raises(AttestationError) as ei:
        verify_tdx(Q4, now=T2053)
    assert ei.value.reason == "attest.tdx.expired"
    assert "2029-09-20" in str(ei.value)


def test_v4_not_yet_valid() -> None:
    assert _reason(Q4, now=datetime(2020, 1, 1, tzinfo=UTC)) == "attest.tdx.expired"


def test_naive_now_is_utc() -> None:
    assert verify_tdx(Q4, now=datetime(2023, 7, 1, 1, 0)).mr_td == verify_tdx(Q4, now=T4).mr_td


# EXPECTED.md, TestNegativeVerification: a single byte set to a value.
@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0x00, 3, "attest.tdx.parse"),  # quote format not supported
        (0x278, 0x10, "attest.tdx.parse"),  # certification data size mismatch
        (0x1343, 0x32, "attest.tdx.chain"),  # PCK cert chain invalid
        (0x1329, 0x32, "attest.tdx.chain"),  # root cert fails
        (0xF5F, 0x32, "attest.tdx.chain"),  # intermediate fails
        (0xB77, 0x32, "attest.tdx.chain"),  # PCK leaf fails
        (0x1E, 0x32, "attest.tdx.signature"),  # header byte
        (0x3C, 0x32, "attest.tdx.signature"),  # body byte
    ],
)
def test_negative_verification(offset: int, value: int, reason: str) -> None:
    b = bytearray(Q4)
    assert b[offset] != value
    b[offset] = value
    assert _reason(bytes(b)) == reason


def test_negative_0x278_message() -> None:
    b = bytearray(Q4)
    b[0x278] = 0x10
    with pytest.raises(AttestationError, match="0x1045"):
        verify_tdx(bytes(b), now=T4)


def test_report_data_binding() -> None:
    rd = verify_tdx(Q4, now=T4).report_data
    assert verify_tdx(Q4, now=T4, expected_report_data=rd).report_data == rd
    wrong = bytearray(rd)
    wrong[63] ^= 1
    with pytest.raises(BindingError) as ei:
        verify_tdx(Q4, now=T4, expected_report_data=bytes(wrong))
    assert ei.value.reason == "attest.tdx.binding"
    assert _reason(Q4, expected_report_data=rd[:32]) == "attest.tdx.binding"


def test_evidence_wrapper() -> None:
    c = verify_tdx_evidence(Evidence(Platform.TDX, Q5), now=T5)
    assert c.quote_version == 5
    with pytest.raises(AttestationError) as ei:
        verify_tdx_evidence(Evidence(Platform.SNP, Q5), now=T5)
    assert ei.value.reason == "attest.tdx.parse"


def _with_u16(q: bytes, off: int, v: int) -> bytes:
    return q[:off] + struct.pack("<H", v) + q[off + 2 :]


@pytest.mark.parametrize(
    ("off", "value"),
    [(0, 4 + 1 + 1), (0, 2), (2, 3), (4, 0), (4, 0x80)],
)
def test_header_rejections(off: int, value: int) -> None:
    assert _reason(_with_u16(Q4, off, value)) == "attest.tdx.parse"


def test_v5_body_descriptor_rejections() -> None:
    # body type 2 with a TDX 1.5 size, type 3 with a 1.0 size, unknown type 1 and 4
    assert _reason(_with_u16(Q5, 0x30, 2), now=T5) == "attest.tdx.parse"
    assert _reason(Q5[:0x32] + struct.pack("<I", 584) + Q5[0x36:], now=T5) == "attest.tdx.parse"
    assert _reason(_with_u16(Q5, 0x30, 1), now=T5) == "attest.tdx.parse"
    assert _reason(_with_u16(Q5, 0x30, 4), now=T5) == "attest.tdx.parse"


def test_truncations_are_parse_errors() -> None:
    q = parse_tdx_quote(Q4)
    for n in (0, 1, 47, 48, 100, 632, 635, 636, 700, 1200, 1300, q.length - 1):
        assert _reason(Q4[:n]) == "attest.tdx.parse", n


def test_lengths_must_agree_exactly() -> None:
    # inner PCK chain size one larger/smaller than its container
    q = parse_tdx_quote(Q4)
    inner = Q4.index(b"-----BEGIN CERTIFICATE-----") - 4
    size = struct.unpack_from("<I", Q4, inner)[0]
    for delta in (-1, 1):
        b = Q4[:inner] + struct.pack("<I", size + delta) + Q4[inner + 4 :]
        assert _reason(b) == "attest.tdx.parse"
    # QE auth data length changed
    auth_off = 632 + 4 + 128 + 6 + 384 + 64
    assert struct.unpack_from("<H", Q4, auth_off)[0] == len(q.qe_auth_data)
    assert _reason(_with_u16(Q4, auth_off, 33)) == "attest.tdx.parse"
    assert _reason(_with_u16(Q4, auth_off, 0xFFFF)) == "attest.tdx.parse"
    # outer certification data type 5 (not nested in a QE report) and inner type 6
    assert _reason(_with_u16(Q4, 632 + 4 + 128, 5)) == "attest.tdx.parse"
    assert _reason(_with_u16(Q4, inner - 2, 6)) == "attest.tdx.parse"


def test_qe_report_signature_and_binding() -> None:
    qe_off = 632 + 4 + 128 + 6
    b = bytearray(Q4)
    b[qe_off + 10] ^= 1
    assert _reason(bytes(b)) == "attest.tdx.qe_report"
    b = bytearray(Q4)
    b[qe_off + 384 + 5] ^= 1  # QE report signature
    assert _reason(bytes(b)) == "attest.tdx.qe_report"
    b = bytearray(Q4)
    b[qe_off + 384 + 64 + 2 + 3] ^= 1  # QE auth data
    assert _reason(bytes(b)) == "attest.tdx.qe_binding"
    b = bytearray(Q4)
    b[632 + 4 + 64 + 7] ^= 1  # attestation key
    assert _reason(bytes(b)) == "attest.tdx.qe_binding"
    b = bytearray(Q4)
    b[632 + 4 + 7] ^= 1  # quote signature
    assert _reason(bytes(b)) == "attest.tdx.signature"


def test_foreign_chain_is_rejected() -> None:
    # Swap the v4 PCK chain for the v5 one: the chain is valid but its key did not sign
    # the v4 QE report.
    q4 = parse_tdx_quote(Q4)
    q5 = parse_tdx_quote(Q5)
    pem5 = q5.pck_chain_pem.rstrip(b"\x00")
    delta = len(pem5) - len(q4.pck_chain_pem)
    start = Q4.index(q4.pck_chain_pem)
    b = bytearray(Q4[:start] + pem5)
    struct.pack_into("<I", b, start - 4, len(pem5))
    struct.pack_into(
        "<I", b, 632 + 4 + 128 + 2, struct.unpack_from("<I", b, 632 + 4 + 128 + 2)[0] + delta
    )
    struct.pack_into("<I", b, 632, struct.unpack_from("<I", b, 632)[0] + delta)
    assert _reason(bytes(b), now=T5) == "attest.tdx.qe_report"


def test_chain_with_only_leaf_and_root() -> None:
    from tdx_testlib import pem_blocks

    q = parse_tdx_quote(Q4)
    blocks = pem_blocks(Q4)
    start = Q4.index(q.pck_chain_pem)
    # drop the intermediate PEM block
    inter_begin = Q4.rfind(b"-----BEGIN CERTIFICATE-----", 0, blocks[1][0])
    inter_end = Q4.index(b"-----END CERTIFICATE-----\n", blocks[1][1]) + len(
        b"-----END CERTIFICATE-----\n"
    )
    pem = Q4[start:inter_begin] + Q4[inter_end : q.length]
    delta = len(pem) - len(q.pck_chain_pem)
    b = bytearray(Q4[:start] + pem)
    struct.pack_into("<I", b, start - 4, len(pem))
    struct.pack_into(
        "<I", b, 632 + 4 + 128 + 2, struct.unpack_from("<I", b, 632 + 4 + 128 + 2)[0] + delta
    )
    struct.pack_into("<I", b, 632, struct.unpack_from("<I", b, 632)[0] + delta)
    with pytest.raises(CertificateChainError) as ei:
        verify_tdx(bytes(b), now=T4)
    assert ei.value.reason == "attest.tdx.chain"


def test_non_bytes_input() -> None:
    for bad in (None, "quote", 12, [1, 2]):
        with pytest.raises(AttestationError) as ei:
            verify_tdx(bad, now=T4)  # type: ignore[arg-type]
        assert ei.value.reason == "attest.tdx.parse"
