"""A small, strict, bounds-checked DER reader for the Intel TDX verifier.

Used for two things only:
  * the outer ``Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }``
    structure of every certificate in a PCK or collateral chain, so that every byte of a
    certificate is either signed (TBS), compared with a fixed encoding (algorithm identifier)
    or verified (signature; BIT STRING with zero unused bits);
  * the Intel SGX PCK certificate extension ``1.2.840.113741.1.13.1`` (PPID, TCB, PCE-ID,
    FMSPC, SGX type, ...), see Intel "SGX PCK Certificate and CRL Profile".

Only single-byte tags and definite, minimally encoded lengths are accepted (DER).  Every
failure raises :class:`DerError`; callers translate it into a typed ``AttestationError``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DerError",
    "Tlv",
    "read_tlv",
    "read_children",
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

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30

# Hard cap on nesting/element counts: nothing legitimate in a certificate comes close.
_MAX_CHILDREN = 4096


class DerError(Exception):
    """Malformed DER (internal; translated by the caller)."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    start: int  # offset of the tag byte
    value_start: int
    end: int  # offset one past the value

    def value(self, buf: bytes) -> bytes:
        return buf[self.value_start : self.end]

    def raw(self, buf: bytes) -> bytes:
        return buf[self.start : self.end]


def read_tlv(buf: bytes, off: int, limit: int | None = None) -> Tlv:
    """Read one TLV starting at ``off``; the whole element must end at or before ``limit``."""
    end_limit = len(buf) if limit is None else limit
    if end_limit > len(buf) or off < 0 or off + 2 > end_limit:
        raise DerError("truncated TLV header")
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not supported")
    first = buf[off + 1]
    pos = off + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        n = first & 0x7F
        if n > 4:
            raise DerError("length too long")
        if pos + n > end_limit:
            raise DerError("truncated length")
        length_bytes = buf[pos : pos + n]
        if length_bytes[0] == 0:
            raise DerError("non-minimal length")
        length = int.from_bytes(length_bytes, "big")
        if length < 0x80:
            raise DerError("non-minimal length")
        pos += n
    if pos + length > end_limit:
        raise DerError("value runs past its container")
    return Tlv(tag, off, pos, pos + length)


def read_children(buf: bytes, parent: Tlv) -> list[Tlv]:
    """All TLVs inside a constructed element; they must fill it exactly."""
    if not parent.tag & 0x20:
        raise DerError("not a constructed element")
    out: list[Tlv] = []
    pos = parent.value_start
    while pos < parent.end:
        if len(out) >= _MAX_CHILDREN:
            raise DerError("too many elements")
        t = read_tlv(buf, pos, parent.end)
        out.append(t)
        pos = t.end
    return out


def read_single(buf: bytes) -> Tlv:
    """Exactly one TLV filling ``buf``."""
    t = read_tlv(buf, 0)
    if t.end != len(buf):
        raise DerError("trailing bytes after DER element")
    return t


def encode_oid(dotted: str) -> bytes:
    """DER content octets of an OBJECT IDENTIFIER (for comparisons)."""
    parts = [int(p) for p in dotted.split(".")]
    if len(parts) < 2:
        raise ValueError("OID needs two arcs")
    arcs = [parts[0] * 40 + parts[1], *parts[2:]]
    out = bytearray()
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_uint(value: bytes, max_value: int) -> int:
    """A non-negative, minimally encoded INTEGER/ENUMERATED content, at most ``max_value``."""
    if not value:
        raise DerError("empty integer")
    if value[0] & 0x80:
        raise DerError("negative integer")
    if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:
        raise DerError("non-minimal integer")
    n = int.from_bytes(value, "big")
    if n > max_value:
        raise DerError("integer out of range")
    return n


# AlgorithmIdentifier { ecdsa-with-SHA256 } (parameters absent), the only algorithm Intel's
# SGX/TDX PKI uses.
ECDSA_WITH_SHA256_ALGID = bytes([0x30, 0x0A, 0x06, 0x08]) + encode_oid("1.2.840.10045.4.3.2")


@dataclass(frozen=True)
class CertificateParts:
    tbs: bytes  # the exact signed bytes (tag and length included)
    algorithm: bytes  # outer signatureAlgorithm, full TLV
    tbs_algorithm: bytes  # signature field inside the TBS, full TLV
    signature: bytes  # BIT STRING content after the unused-bits octet


def split_certificate(der: bytes) -> CertificateParts:
    cert = read_single(der)
    if cert.tag != TAG_SEQUENCE:
        raise DerError("certificate is not a SEQUENCE")
    kids = read_children(der, cert)
    if len(kids) != 3:
        raise DerError("certificate must have 3 elements")
    tbs, alg, sig = kids
    if tbs.tag != TAG_SEQUENCE or alg.tag != TAG_SEQUENCE or sig.tag != TAG_BIT_STRING:
        raise DerError("certificate element types")
    sig_value = sig.value(der)
    if not sig_value or sig_value[0] != 0:
        raise DerError("signature BIT STRING must have 0 unused bits")
    tbs_kids = read_children(der, tbs)
    # TBSCertificate: [0] version (optional, explicit), serialNumber, signature, ...
    idx = 1 if tbs_kids and tbs_kids[0].tag == 0xA0 else 0
    if len(tbs_kids) < idx + 2 or tbs_kids[idx].tag != TAG_INTEGER:
        raise DerError("TBS structure")
    tbs_alg = tbs_kids[idx + 1]
    if tbs_alg.tag != TAG_SEQUENCE:
        raise DerError("TBS signature algorithm")
    return CertificateParts(
        tbs=tbs.raw(der),
        algorithm=alg.raw(der),
        tbs_algorithm=tbs_alg.raw(der),
        signature=sig_value[1:],
    )


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
