"""DER pieces of the Intel TDX verifier, on top of the shared reader in ``_der``.

  * the outer ``Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }``
    structure of every certificate in a PCK or collateral chain (``split_certificate``, re-
    exported from ``_der``), so that every byte of a certificate is either signed (TBS),
    compared with a fixed encoding (algorithm identifier) or verified (signature; BIT STRING
    with zero unused bits);
  * the Intel SGX PCK certificate extension ``1.2.840.113741.1.13.1`` (PPID, TCB, PCE-ID,
    FMSPC, SGX type, ...), see Intel "SGX PCK Certificate and CRL Profile".

Only single-byte tags and definite, minimally encoded lengths are accepted (DER).  Every
failure raises :class:`DerError`; callers translate it into a typed ``AttestationError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    CertificateParts,
    DerError,
    Tlv,
    decode_uint,
    encode_oid,
    read_children,
    read_single,
    read_tlv,
    split_certificate,
)

__all__ = [
    "DerError",
    "Tlv",
    "read_tlv",
    "read_children",
    "read_single",
    "encode_oid",
    "decode_uint",
    "CertificateParts",
    "split_certificate",
    "PckTcb",
    "PckSgxExtension",
    "parse_sgx_extension",
    "SGX_EXTENSION_OID",
    "ECDSA_WITH_SHA256_ALGID",
]

# AlgorithmIdentifier { ecdsa-with-SHA256 } (parameters absent), the only algorithm Intel's
# SGX/TDX PKI uses.
ECDSA_WITH_SHA256_ALGID = bytes([0x30, 0x0A, 0x06, 0x08]) + encode_oid("1.2.840.10045.4.3.2")


# ---------------------------------------------------------------------------------------------
# Intel SGX PCK certificate extension (Intel "SGX PCK Certificate and CRL Profile", 1.3.5):
#
#   SGX Extensions  1.2.840.113741.1.13.1  SEQUENCE OF SEQUENCE { OID, value }
#     .1  PPID          OCTET STRING (16)
#     .2  TCB           SEQUENCE OF SEQUENCE { OID .2.1 .. .2.16 INTEGER (comp SVNs),
#                                              .2.17 INTEGER (PCESVN),
#                                              .2.18 OCTET STRING (16) (CPUSVN) }
#     .3  PCE-ID        OCTET STRING (2)
#     .4  FMSPC         OCTET STRING (6)
#     .5  SGX Type      ENUMERATED (0 Standard, 1 Scalable, 2 Scalable with integrity)
#     .6  PlatformInstanceID  OCTET STRING (16)          (Platform CA certificates only)
#     .7  Configuration SEQUENCE { .7.1 dynamicPlatform BOOLEAN, .7.2 cachedKeys BOOLEAN,
#                                  .7.3 SMTEnabled BOOLEAN } (Platform CA only, all optional)
# ---------------------------------------------------------------------------------------------

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_SGX = encode_oid(SGX_EXTENSION_OID)


def _sub(n: int, *more: int) -> bytes:
    # OID content octets of SGX_EXTENSION_OID.n(.more); all arcs here are < 128.
    return _SGX + bytes([n, *more])


@dataclass(frozen=True)
class PckTcb:
    comp_svns: tuple[int, ...]  # 16 SGX TCB component SVNs
    pcesvn: int
    cpusvn: bytes  # 16


@dataclass(frozen=True)
class PckSgxExtension:
    ppid: bytes  # 16
    tcb: PckTcb
    pceid: bytes  # 2
    fmspc: bytes  # 6
    sgx_type: int | None  # 0 Standard, 1 Scalable, 2 Scalable with integrity
    platform_instance_id: bytes | None = None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None


def _pairs(buf: bytes, seq: Tlv) -> dict[bytes, Tlv]:
    """SEQUENCE OF SEQUENCE { OID, value } -> {oid content octets: value TLV}; no duplicates."""
    if seq.tag != TAG_SEQUENCE:
        raise DerError("expected SEQUENCE")
    out: dict[bytes, Tlv] = {}
    for item in read_children(buf, seq):
        if item.tag != TAG_SEQUENCE:
            raise DerError("expected SEQUENCE { OID, value }")
        kids = read_children(buf, item)
        if len(kids) != 2 or kids[0].tag != TAG_OID:
            raise DerError("expected SEQUENCE { OID, value }")
        oid = kids[0].value(buf)
        if oid in out:
            raise DerError("duplicate OID in SGX extension")
        out[oid] = kids[1]
    return out


def _need(d: dict[bytes, Tlv], oid: bytes, tag: int) -> Tlv:
    t = d.get(oid)
    if t is None:
        raise DerError("SGX extension element missing")
    if t.tag != tag:
        raise DerError("SGX extension element has the wrong type")
    return t


def _octets(buf: bytes, d: dict[bytes, Tlv], oid: bytes, size: int) -> bytes:
    v = _need(d, oid, TAG_OCTET_STRING).value(buf)
    if len(v) != size:
        raise DerError("SGX extension element has the wrong size")
    return v


def _bool(buf: bytes, t: Tlv) -> bool:
    if t.tag != TAG_BOOLEAN:
        raise DerError("expected BOOLEAN")
    v = t.value(buf)
    if v not in (b"\x00", b"\xff"):
        raise DerError("non-DER BOOLEAN")
    return v == b"\xff"


def parse_sgx_extension(ext_value: bytes) -> PckSgxExtension:
    """Parse the DER value (extnValue content) of the SGX extension."""
    top = read_single(ext_value)
    d = _pairs(ext_value, top)
    ppid = _octets(ext_value, d, _sub(1), 16)
    tcb_pairs = _pairs(ext_value, _need(d, _sub(2), TAG_SEQUENCE))
    comps = tuple(
        decode_uint(_need(tcb_pairs, _sub(2, i), TAG_INTEGER).value(ext_value), 255)
        for i in range(1, 17)
    )
    pcesvn = decode_uint(_need(tcb_pairs, _sub(2, 17), TAG_INTEGER).value(ext_value), 0xFFFF)
    cpusvn = _octets(ext_value, tcb_pairs, _sub(2, 18), 16)
    if len(tcb_pairs) != 18:
        raise DerError("unexpected element in SGX TCB")
    pceid = _octets(ext_value, d, _sub(3), 2)
    fmspc = _octets(ext_value, d, _sub(4), 6)
    # SGX Type is mandatory in the current profile; tolerate its absence in older certificates
    # (nothing in the verification depends on it).
    sgx_type = (
        decode_uint(_need(d, _sub(5), TAG_ENUMERATED).value(ext_value), 0xFF)
        if _sub(5) in d
        else None
    )
    pid: bytes | None = None
    dyn = cached = smt = None
    if _sub(6) in d:
        pid = _octets(ext_value, d, _sub(6), 16)
    if _sub(7) in d:
        cfg = _pairs(ext_value, _need(d, _sub(7), TAG_SEQUENCE))
        for oid in cfg:
            if oid not in (_sub(7, 1), _sub(7, 2), _sub(7, 3)):
                raise DerError("unexpected element in SGX configuration")
        dyn = _bool(ext_value, cfg[_sub(7, 1)]) if _sub(7, 1) in cfg else None
        cached = _bool(ext_value, cfg[_sub(7, 2)]) if _sub(7, 2) in cfg else None
        smt = _bool(ext_value, cfg[_sub(7, 3)]) if _sub(7, 3) in cfg else None
    return PckSgxExtension(
        ppid=ppid,
        tcb=PckTcb(comp_svns=comps, pcesvn=pcesvn, cpusvn=cpusvn),
        pceid=pceid,
        fmspc=fmspc,
        sgx_type=sgx_type,
        platform_instance_id=pid,
        dynamic_platform=dyn,
        cached_keys=cached,
        smt_enabled=smt,
    )
