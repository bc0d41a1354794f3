"""Mutation sweeps: single-byte changes anywhere in the signed region of a real report, in the
signature, and in every certificate's DER are all rejected with a GPU reason code.

The sweeps call the verifier's inner function ``_verify`` (no catch-all wrapper), so an
unexpected exception type (IndexError, struct.error, ...) fails the test instead of being
folded into ``attest.gpu.parse``.
"""

from __future__ import annotations

import base64
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from nvgpu_testlib import BLACKWELL_NONCE, GPU_REASONS, HOPPER_NONCE, blackwell, hopper, legacy
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu import SIGNATURE_LEN, _verify, parse_gpu_report


def _reason(report: bytes, certs: bytes, nonce: bytes | None = HOPPER_NONCE) -> str:
    try:
        _verify(report, certs, None, nonce, (), None)
    except AttestationError as exc:
        return exc.reason
    return "ACCEPTED"


def _positions(n: int, want: int) -> list[int]:
    """Deterministic dense sample: every position if n <= want, else an even stride plus the
    first 64 bytes (all header fields) and the last 128 (opaque tail + signature)."""
    if n <= want:
        return list(range(n))
    step = max(1, n // want)
    return sorted(set(range(0, n, step)) | set(range(min(64, n))) | set(range(max(0, n - 128), n)))


def _raw(hex_report: bytes) -> bytes:
    return bytes.fromhex(hex_report.decode().strip())


@pytest.mark.parametrize("sample", ["hopper", "legacy", "blackwell"])
def test_every_sampled_byte_of_signed_region_and_signature(sample: str) -> None:
    if sample == "hopper":
        rep, certs = hopper()
        nonce: bytes | None = HOPPER_NONCE
    elif sample == "blackwell":
        rep, certs = blackwell()
        nonce = BLACKWELL_NONCE
    else:
        rep, certs = legacy()
        nonce = None
    raw = _raw(rep)
    parsed = parse_gpu_report(raw)
    assert len(parsed.signed_data) + SIGNATURE_LEN == len(raw)
    positions = _positions(len(raw), 450)
    assert len(positions) >= 400
    seen: dict[str, int] = {}
    for pos in positions:
        for mask in (0x01, 0x80) if sample != "legacy" else (0x41,):
            m = bytearray(raw)
            m[pos] ^= mask
            reason = _reason(bytes(m), certs, nonce)
            assert reason in GPU_REASONS, (pos, mask, reason)
            seen[reason] = seen.get(reason, 0) + 1
    # most changes are caught by the signature; framing changes by the parser
    assert seen.get("attest.gpu.signature", 0) > len(positions) // 2
    assert "attest.gpu.parse" in seen


def test_every_byte_of_the_request_nonce_and_signature() -> None:
    rep, certs = hopper()
    raw = _raw(rep)
    for pos in [*range(4, 4 + 32), *range(len(raw) - SIGNATURE_LEN, len(raw))]:
        m = bytearray(raw)
        m[pos] ^= 0x5A
        assert _reason(bytes(m), certs) == "attest.gpu.signature", pos
    # a truncated report at every length is a parse error, never an exception of another type
    for n in range(0, len(raw), 7):
        assert _reason(raw[:n], certs) in {"attest.gpu.parse", "attest.gpu.signature"}


def test_opaque_fwid_change_is_signature_error() -> None:
    # the FWID is compared only once the report is authenticated: a changed FWID byte breaks
    # the report signature first (a correctly signed report with another FWID is an FWID error,
    # see test_nvgpu_synthetic.py)
    rep, certs = hopper()
    raw = bytearray(_raw(rep))
    fwid = bytes.fromhex("f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d")
    at = bytes(raw).index(fwid)
    raw[at + 10] ^= 1
    assert _reason(bytes(raw), certs) == "attest.gpu.signature"


def _pem(c: bytes) -> bytes:
    return b"-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(base64.b64encode(c).decode(), 64)).encode() + b"\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("sample", ["hopper", "blackwell"])
@pytest.mark.parametrize("which", [0, 1, 2, 3, 4])
def test_every_sampled_byte_of_each_certificate(which: int, sample: str) -> None:
    rep, certs = hopper() if sample == "hopper" else blackwell()
    nonce = HOPPER_NONCE if sample == "hopper" else BLACKWELL_NONCE
    assert _reason(rep, certs, nonce) == "ACCEPTED"  # the unmodified chain passes every check
    ders = [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(certs)]
    assert len(ders) == 5
    der = ders[which]
    positions = _positions(len(der), 400)
    accepted = []
    for pos in positions:
        m = bytearray(der)
        m[pos] ^= 0x01
        bundle = b"".join(_pem(bytes(m)) if i == which else _pem(d) for i, d in enumerate(ders))
        reason = _reason(rep, bundle, nonce)
        if reason == "ACCEPTED":
            accepted.append(pos)
        else:
            assert reason in GPU_REASONS, (which, pos, reason)
    assert accepted == []


def test_dropping_or_duplicating_certificates() -> None:
    rep, certs = hopper()
    ders = [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(certs)]
    for drop in range(1, 4):  # any intermediate
        bundle = b"".join(_pem(d) for i, d in enumerate(ders) if i != drop)
        assert _reason(rep, bundle) == "attest.gpu.chain"
    dup = b"".join(_pem(d) for d in [ders[0], *ders])
    assert _reason(rep, dup) == "attest.gpu.chain"
    assert _reason(rep, b"") == "attest.gpu.chain"
    assert _reason(rep, b"not a certificate") == "attest.gpu.chain"
    assert _reason(rep, _pem(b"\x30\x03\x02\x01\x01")) == "attest.gpu.chain"
