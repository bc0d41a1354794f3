"""The small DER reader and the SGX PCK extension parser."""

from __future__ import annotations

import random

import pytest
from tdx_testlib import Q4
from weightseal.attest._tdx import parse_tdx_quote
from weightseal.attest._tdx_der import (
    ECDSA_WITH_SHA256_ALGID,
    DerError,
    decode_uint,
    encode_oid,
    parse_sgx_extension,
    read_tlv,
    split_certificate,
)
from weightseal.attest._tdx_pki import parse_pem_chain


def _ext_value() -> bytes:
    from cryptography import x509

    leaf = parse_pem_chain(parse_tdx_quote(Q4).pck_chain_pem, reason="x")[0]
    v = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.840.113741.1.13.1")).value
    assert isinstance(v, x509.UnrecognizedExtension)
    return v.value


def test_oid_and_algid() -> None:
    assert encode_oid("1.2.840.113741.1.13.1").hex() == "2a864886f84d010d01"
    assert ECDSA_WITH_SHA256_ALGID.hex() == "300a06082a8648ce3d040302"


def test_tlv_strictness() -> None:
    assert read_tlv(b"\x04\x02ab", 0).value(b"\x04\x02ab") == b"ab"
    for bad in (
        b"",
        b"\x04",
        b"\x04\x03ab",
        b"\x04\x80",
        b"\x04\x81\x05abcde",
        b"\x04\x82\x00\x02ab",
        b"\x1f\x01\x00",
        b"\x04\x85\x01\x00\x00\x00\x00",
    ):
        with pytest.raises(DerError):
            read_tlv(bad, 0)
    assert decode_uint(b"\x00\x80", 255) == 128
    for bad_int in (b"", b"\x80", b"\x00\x01", b"\x01\x00"):
        with pytest.raises(DerError):
            decode_uint(bad_int, 255)


def test_sgx_extension_values() -> None:
    ext = parse_sgx_extension(_ext_value())
    assert ext.ppid.hex() == "089ddfdb9c0359c82a3bc7719239574e"
    assert ext.fmspc.hex() == "50806f000000" and ext.pceid.hex() == "0000"
    assert ext.tcb.pcesvn == 11
    assert ext.tcb.comp_svns == (3, 3, 2, 2, 2, 1, 0, 2) + (0,) * 8
    assert ext.tcb.cpusvn == bytes(ext.tcb.comp_svns)
    assert ext.sgx_type == 1  # Scalable (Sapphire Rapids)
    assert (ext.dynamic_platform, ext.cached_keys, ext.smt_enabled) == (True, False, True)
    # Platform CA certificates carry the platform instance id and configuration
    assert ext.platform_instance_id is not None and len(ext.platform_instance_id) == 16


def test_sgx_extension_mutations_never_crash() -> None:
    raw = _ext_value()
    rng = random.Random(1234)  # noqa: S311 - deterministic test data
    ok = 0
    for i in range(3000):
        b = bytearray(raw)
        for _ in range(1 + i % 3):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            parse_sgx_extension(bytes(b))
            ok += 1
        except DerError:
            pass
    for n in range(len(raw)):
        with pytest.raises(DerError):
            parse_sgx_extension(raw[:n])
    assert ok < 3000


def test_split_certificate_rejects_padding_bits() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = parse_pem_chain(parse_tdx_quote(Q4).pck_chain_pem, reason="x")[0]
    der = leaf.public_bytes(Encoding.DER)
    parts = split_certificate(der)
    assert parts.algorithm == parts.tbs_algorithm == ECDSA_WITH_SHA256_ALGID
    i = der.rindex(b"\x03", 0, len(der) - len(parts.signature))  # BIT STRING tag of the signature
    b = bytearray(der)
    assert b[i + 2] == 0
    b[i + 2] = 1  # one unused bit
    with pytest.raises(DerError):
        split_certificate(bytes(b))
    with pytest.raises(DerError):
        split_certificate(der + b"\x00")
