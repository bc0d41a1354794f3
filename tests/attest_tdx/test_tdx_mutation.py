"""Mutation sweep: every single-byte flip of the signed header+body, the QE report, the
attestation key and every DER byte of the PCK chain is rejected with the right reason."""

from __future__ import annotations

from datetime import datetime

import pytest
from tdx_testlib import Q4, Q5, T4, T5, TDX_REASONS, pem_blocks, replace_der
from weightseal.attest._errors import AttestationError
from weightseal.attest._tdx import parse_tdx_quote, verify_tdx


def _reason(quote: bytes, now: datetime) -> str:
    try:
        verify_tdx(quote, now=now)
    except AttestationError as e:
        assert e.reason in TDX_REASONS, e.reason
        return e.reason
    return "ACCEPTED"


def _flip(q: bytes, i: int, mask: int) -> bytes:
    b = bytearray(q)
    b[i] ^= mask
    return bytes(b)


@pytest.mark.parametrize(("quote", "now"), [(Q4, T4), (Q5, T5)], ids=["v4", "v5"])
def test_flip_signed_region(quote: bytes, now: datetime) -> None:
    n = len(parse_tdx_quote(quote).signed_region)
    seen = {}
    for i in range(n):
        for mask in (0x01, 0x80):
            r = _reason(_flip(quote, i, mask), now)
            assert r in ("attest.tdx.parse", "attest.tdx.signature"), (i, mask, r)
            seen[r] = seen.get(r, 0) + 1
    assert seen["attest.tdx.signature"] > n  # the body and most of the header: signature
    assert seen["attest.tdx.parse"] >= 8  # version / key type / TEE type (and v5 descriptor)


@pytest.mark.parametrize(("quote", "now"), [(Q4, T4), (Q5, T5)], ids=["v4", "v5"])
def test_flip_qe_report_and_signatures(quote: bytes, now: datetime) -> None:
    q = parse_tdx_quote(quote)
    sig_off = len(q.signed_region) + 4
    key_off = sig_off + 64
    qe_off = key_off + 64 + 6
    assert quote[qe_off : qe_off + 384] == q.qe_report.raw
    for i in range(384 + 64):  # QE report and its signature
        assert _reason(_flip(quote, qe_off + i, 0x01), now) == "attest.tdx.qe_report", i
    for i in range(64):  # attestation key: bound by the QE report data
        assert _reason(_flip(quote, key_off + i, 0x01), now) == "attest.tdx.qe_binding", i
    for i in range(64):  # quote signature
        assert _reason(_flip(quote, sig_off + i, 0x01), now) == "attest.tdx.signature", i
    auth_off = qe_off + 384 + 64 + 2
    for i in range(len(q.qe_auth_data)):
        assert _reason(_flip(quote, auth_off + i, 0x01), now) == "attest.tdx.qe_binding", i


@pytest.mark.filterwarnings("ignore::UserWarning")  # cryptography warns about odd names
@pytest.mark.parametrize(("quote", "now"), [(Q4, T4), (Q5, T5)], ids=["v4", "v5"])
def test_flip_pck_chain_der(quote: bytes, now: datetime) -> None:
    blocks = pem_blocks(quote)
    assert len(blocks) == 3
    for index, (_s, _e, der) in enumerate(blocks):
        assert replace_der(quote, index, der) == quote  # re-encoding is exact
        # every byte of the leaf; a dense deterministic sample of the CA certificates
        step = 1 if index == 0 else 3
        for i in range(0, len(der), step):
            b = bytearray(der)
            b[i] ^= 0x01 if i % 2 else 0x80
            r = _reason(replace_der(quote, index, bytes(b)), now)
            assert r == "attest.tdx.chain", (index, i, r)


def test_flip_pem_text_is_rejected_or_identical() -> None:
    # Bytes of the PEM text itself (a dense sample): either rejected as a chain/parse error,
    # or (whitespace that PEM ignores) the same certificates.
    q = parse_tdx_quote(Q4)
    start = Q4.index(q.pck_chain_pem)
    base = verify_tdx(Q4, now=T4)
    for i in range(start, q.length, 7):
        b = _flip(Q4, i, 0x20)
        try:
            c = verify_tdx(b, now=T4)
        except AttestationError as e:
            assert e.reason in ("attest.tdx.chain", "attest.tdx.parse"), (i, e.reason)
        else:
            assert c == base
