"""The one low-level DER (ASN.1) reader shared by the attestation verifiers.

Strict and bounded: single-byte tags only, definite and minimally encoded lengths of at most
four length octets (indefinite lengths are refused), every element must end inside its
container, element counts are capped, and nothing recurses.  Every failure raises
:class:`DerError`, an internal exception each verifier translates into its own typed
``AttestationError`` with its own reason code; no other exception escapes on any input.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DerError",
    "Tlv",
    "read_tlv",
    "read_children",
    "read_single",
    "encode_oid",
    "decode_oid",
    "decode_uint",
    "CertificateParts",
    "certificate_tlvs",
    "split_certificate",
    "split_crl",
    "TAG_BOOLEAN",
    "TAG_INTEGER",
    "TAG_BIT_STRING",
    "TAG_OCTET_STRING",
    "TAG_OID",
    "TAG_ENUMERATED",
    "TAG_IA5STRING",
    "TAG_SEQUENCE",
]

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_IA5STRING = 0x16
TAG_SEQUENCE = 0x30
TAG_CONTEXT_0 = 0xA0  # [0] EXPLICIT, constructed (e.g. the TBSCertificate version)

# Hard cap on the elements of one constructed value: nothing legitimate comes close.
MAX_CHILDREN = 4096


class DerError(Exception):
    """Malformed DER (internal; translated by the caller)."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    start: int  # offset of the tag byte
    value_start: int
    end: int  # offset one past the value

    @property
    def value_len(self) -> int:
        return self.end - self.value_start

    def value(self, buf: bytes) -> bytes:
        return buf[self.value_start : self.end]

    def raw(self, buf: bytes) -> bytes:
        return buf[self.start : self.end]


def read_tlv(buf: bytes, off: int, limit: int | None = None) -> Tlv:
    """Read one TLV starting at ``off``; the whole element must end at or before ``limit``
    (default: the end of ``buf``)."""
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
        if buf[pos] == 0:
            raise DerError("non-minimal length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        if length < 0x80:
            raise DerError("non-minimal length")
        pos += n
    if pos + length > end_limit:
        raise DerError("value runs past its container")
    return Tlv(tag, off, pos, pos + length)


def read_children(buf: bytes, parent: Tlv, *, max_children: int = MAX_CHILDREN) -> list[Tlv]:
    """All TLVs inside a constructed element; they must fill it exactly.  More than
    ``max_children`` elements is an error."""
    if not parent.tag & 0x20:
        raise DerError("not a constructed element")
    out: list[Tlv] = []
    pos = parent.value_start
    while pos < parent.end:
        if len(out) >= max_children:
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
    """DER content octets of an OBJECT IDENTIFIER (for comparisons with constants)."""
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


def decode_oid(body: bytes) -> str:
    """Dotted form of OBJECT IDENTIFIER content octets (used only to look up a name)."""
    if not body or body[-1] & 0x80:
        raise DerError("bad OID")
    arcs: list[int] = []
    val = 0
    for b in body:
        val = (val << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(val)
            val = 0
    first = arcs[0]
    top = min(first // 40, 2)
    return ".".join(str(a) for a in [top, first - 40 * top, *arcs[1:]])


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


# ---------------------------------------------------------------------------------------------
# Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }  (RFC 5280)


@dataclass(frozen=True)
class CertificateParts:
    tbs: bytes  # the exact signed bytes (tag and length included)
    algorithm: bytes  # outer signatureAlgorithm, full TLV
    tbs_algorithm: bytes  # signature field inside the TBS, full TLV
    signature: bytes  # BIT STRING content after the unused-bits octet


def certificate_tlvs(der: bytes, *, nonempty_signature: bool = False) -> tuple[Tlv, Tlv, Tlv]:
    """The (tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE, signatureValue BIT STRING)
    TLVs of the one certificate filling ``der``.  The BIT STRING must have a zero unused-bits
    octet (and, with ``nonempty_signature``, at least one signature byte after it)."""
    cert = read_single(der)
    if cert.tag != TAG_SEQUENCE:
        raise DerError("certificate is not a SEQUENCE")
    kids = read_children(der, cert)
    if len(kids) != 3:
        raise DerError("certificate must have 3 elements")
    tbs, alg, sig = kids
    if tbs.tag != TAG_SEQUENCE or alg.tag != TAG_SEQUENCE or sig.tag != TAG_BIT_STRING:
        raise DerError("certificate element types")
    if sig.value_len < (2 if nonempty_signature else 1) or der[sig.value_start] != 0:
        raise DerError("signature BIT STRING must have 0 unused bits")
    return tbs, alg, sig


def split_certificate(
    der: bytes, *, nonempty_signature: bool = False, whole_tbs: bool = True
) -> CertificateParts:
    """Split a certificate strictly (see :func:`certificate_tlvs`).  In the TBSCertificate,
    ``[0] version`` (optional), ``serialNumber INTEGER`` and ``signature SEQUENCE`` are
    checked; with ``whole_tbs`` every TBS element must also be well-formed DER and the
    elements must fill the TBS exactly."""
    tbs, alg, sig = certificate_tlvs(der, nonempty_signature=nonempty_signature)
    # TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, ... }
    if whole_tbs:
        tbs_kids = read_children(der, tbs)
        idx = 1 if tbs_kids and tbs_kids[0].tag == TAG_CONTEXT_0 else 0
        if len(tbs_kids) < idx + 2 or tbs_kids[idx].tag != TAG_INTEGER:
            raise DerError("TBS structure")
        tbs_alg = tbs_kids[idx + 1]
    else:
        serial = read_tlv(der, tbs.value_start, tbs.end)
        if serial.tag == TAG_CONTEXT_0:
            serial = read_tlv(der, serial.end, tbs.end)
        if serial.tag != TAG_INTEGER:
            raise DerError("TBS structure")
        tbs_alg = read_tlv(der, serial.end, tbs.end)
    if tbs_alg.tag != TAG_SEQUENCE:
        raise DerError("TBS signature algorithm")
    return _parts(der, tbs, alg, tbs_alg, sig)


def _parts(der: bytes, tbs: Tlv, alg: Tlv, tbs_alg: Tlv, sig: Tlv) -> CertificateParts:
    return CertificateParts(tbs=tbs.raw(der), algorithm=alg.raw(der), tbs_algorithm=tbs_alg.raw(der),
                            signature=sig.value(der)[1:])


def split_crl(der: bytes) -> CertificateParts:
    """Split a CRL strictly: ``CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm,
    signatureValue }`` (RFC 5280 section 5.1, same outer shape as a certificate) and, in the
    TBSCertList, ``version INTEGER OPTIONAL`` then ``signature AlgorithmIdentifier``."""
    tbs, alg, sig = certificate_tlvs(der, nonempty_signature=True)
    first = read_tlv(der, tbs.value_start, tbs.end)
    if first.tag == TAG_INTEGER:
        first = read_tlv(der, first.end, tbs.end)
    if first.tag != TAG_SEQUENCE:
        raise DerError("TBSCertList signature algorithm")
    return _parts(der, tbs, alg, first, sig)
