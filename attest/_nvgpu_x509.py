"""X.509 helpers for the NVIDIA GPU verifier: pinned roots, PEM chain loading, chain
validation to a pinned root, and the TCG DICE FWID extensions of the attestation-key cert.

Every function raises only ``AttestationError`` subclasses with the reason code it is given.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Sequence
from datetime import datetime
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from ._der import (
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    Tlv,
    certificate_tlvs,
    decode_oid,
    read_children,
    read_tlv,
)
from ._errors import CertificateChainError

__all__ = [
    "OID_DICE_FWID_HOPPER",
    "OID_DICE_TCBINFO",
    "device_root",
    "rim_root",
    "load_pem_chain",
    "verify_chain",
    "check_validity",
    "extract_fwid",
    "common_name",
    "cert_der",
]

# TCG DICE extensions.  Hopper AK certs carry 2.23.133.5.4.1 with an NVIDIA layout
#   SEQUENCE { INTEGER, SubjectPublicKeyInfo, SEQUENCE { hashAlg OID, digest OCTET STRING } }
# (the FWID is that last digest).  Blackwell AK certs carry 2.23.133.5.4.1.1 holding a DICE
# TcbInfo (SEQUENCE of IMPLICIT context fields [0] vendor .. [6] fwids ..) and the FWID is
# fwids[0].digest.  (TCG DICE Attestation Architecture; NVIDIA nvtrust / attestation-sdk.)
OID_DICE_FWID_HOPPER = x509.ObjectIdentifier("2.23.133.5.4.1")
OID_DICE_TCBINFO = x509.ObjectIdentifier("2.23.133.5.4.1.1")

_HASH_OIDS = {
    "2.16.840.1.101.3.4.2.1": 32,  # sha256
    "2.16.840.1.101.3.4.2.2": 48,  # sha384
    "2.16.840.1.101.3.4.2.3": 64,  # sha512
}

_MAX_PEM_BYTES = 256 * 1024
_MAX_CERTS = 10

# Extensions we understand; any other extension marked critical makes the cert unusable.
_KNOWN_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
}


def _load_root(name: str) -> x509.Certificate:
    data = resources.files(__package__ + ".roots").joinpath(name).read_bytes()
    return x509.load_pem_x509_certificate(data)


@functools.cache
def device_root() -> x509.Certificate:
    """The pinned NVIDIA Device Identity CA (self-signed, P-384)."""
    return _load_root("nvidia_device_root.pem")


@functools.cache
def rim_root() -> x509.Certificate:
    """The pinned NVIDIA CoRIM (RIM) signing root CA."""
    return _load_root("nvidia_rim_root.pem")


def load_pem_chain(data: bytes, reason: str) -> list[x509.Certificate]:
    """Parse a PEM bundle (or base64 of a PEM bundle, as NVIDIA's JSON evidence carries it)."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise CertificateChainError("no certificate chain supplied", reason=reason)
    if len(data) > _MAX_PEM_BYTES:
        raise CertificateChainError("certificate chain too large", reason=reason)
    raw = bytes(data)
    if b"-----BEGIN" not in raw:
        try:
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise CertificateChainError("certificate chain is neither PEM nor base64 PEM", reason=reason) from None
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except Exception as exc:  # ValueError, InvalidVersion, UnsupportedAlgorithm, ...
        raise CertificateChainError(f"malformed PEM certificate: {type(exc).__name__}", reason=reason) from None
    if len(certs) > _MAX_CERTS:
        raise CertificateChainError("too many certificates in chain", reason=reason)
    for c in certs:
        strict_certificate_der(cert_der(c), reason)
    return certs


def strict_certificate_der(der: bytes, reason: str) -> None:
    """Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
    signatureValue BIT STRING with 0 unused bits }, nothing after it.  The X.509 parser
    tolerates a non-zero unused-bits count in the signature BIT STRING, which would make one
    certificate encodable in several ways; refuse that."""
    try:
        certificate_tlvs(der, nonempty_signature=True)
    except DerError as exc:
        raise CertificateChainError(f"non-canonical certificate encoding: {exc}", reason=reason) from None


def cert_der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def common_name(name: x509.Name) -> str | None:
    try:
        attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except ValueError:
        return None
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else None


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier, reason: str) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except (ValueError, TypeError) as exc:  # duplicate or malformed extensions
        raise CertificateChainError(f"malformed certificate extensions: {type(exc).__name__}", reason=reason) from None


def _check_critical(cert: x509.Certificate, reason: str) -> None:
    try:
        exts = list(cert.extensions)
    except (ValueError, TypeError) as exc:
        raise CertificateChainError(f"malformed certificate extensions: {type(exc).__name__}", reason=reason) from None
    for e in exts:
        if e.critical and e.oid not in _KNOWN_CRITICAL:
            raise CertificateChainError(f"unsupported critical extension {e.oid.dotted_string}", reason=reason)


def verify_chain(
    certs: Sequence[x509.Certificate],
    root: x509.Certificate,
    *,
    reason: str,
    require_p384: bool,
) -> list[x509.Certificate]:
    try:
        return _verify_chain(certs, root, reason=reason, require_p384=require_p384)
    except CertificateChainError:
        raise
    except Exception as exc:  # lazily parsed fields of a malformed certificate
        raise CertificateChainError(f"malformed certificate: {type(exc).__name__}", reason=reason) from None


def _verify_chain(
    certs: Sequence[x509.Certificate],
    root: x509.Certificate,
    *,
    reason: str,
    require_p384: bool,
) -> list[x509.Certificate]:
    """Check that ``certs`` (leaf first) chains to the pinned ``root``.

    A supplied root must be byte-identical to the pinned one (it is then dropped); a chain that
    ends in any other self-signed certificate is rejected.  Returns the chain without the root,
    leaf first; at least the signing (leaf) certificate must remain.  Checks: issuer/subject
    linkage and signature of every link (ECDSA, and with ``require_p384`` P-384/SHA-384 only),
    CA basic constraints and keyCertSign on every issuer, path length constraints, leaf is no CA
    and may sign, and no unknown critical extension.  Validity periods are checked separately
    (``check_validity``), after the signatures, so an expiry is reported as such.
    """
    chain = list(certs)
    root_der = cert_der(root)
    if chain and cert_der(chain[-1]) == root_der:
        chain.pop()
    elif chain and chain[-1].issuer == chain[-1].subject:
        raise CertificateChainError("certificate chain ends in an untrusted root", reason=reason)
    if not chain:
        raise CertificateChainError(
            "certificate chain must contain the signing certificate and lead to the pinned root",
            reason=reason,
        )
    for c in chain:
        if cert_der(c) == root_der:
            raise CertificateChainError("pinned root appears inside the chain", reason=reason)
    full = [*chain, root]
    for i, cert in enumerate(full):
        _check_critical(cert, reason)
        issuer = full[i + 1] if i + 1 < len(full) else root
        if cert.issuer != issuer.subject:
            raise CertificateChainError(f"certificate {i} is not issued by the next certificate", reason=reason)
        if require_p384:
            if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA384:
                raise CertificateChainError(f"certificate {i} is not signed with ECDSA-SHA384", reason=reason)
            key = issuer.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
                raise CertificateChainError(f"issuer of certificate {i} has no P-384 key", reason=reason)
        elif cert.signature_algorithm_oid not in (
            SignatureAlgorithmOID.ECDSA_WITH_SHA256,
            SignatureAlgorithmOID.ECDSA_WITH_SHA384,
            SignatureAlgorithmOID.ECDSA_WITH_SHA512,
            SignatureAlgorithmOID.RSA_WITH_SHA256,
            SignatureAlgorithmOID.RSA_WITH_SHA384,
            SignatureAlgorithmOID.RSA_WITH_SHA512,
        ):
            raise CertificateChainError(f"certificate {i} uses an unsupported signature algorithm", reason=reason)
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            raise CertificateChainError(f"signature of certificate {i} does not verify", reason=reason) from None
        if i == 0:
            continue
        # cert i (i >= 1) is a CA that issued cert i-1.
        bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS, reason)
        if bc is None or not isinstance(bc.value, x509.BasicConstraints) or not bc.value.ca:
            raise CertificateChainError(f"certificate {i} is not a CA", reason=reason)
        if bc.value.path_length is not None and bc.value.path_length < i - 1:
            raise CertificateChainError(f"path length constraint of certificate {i} exceeded", reason=reason)
        ku = _ext(cert, ExtensionOID.KEY_USAGE, reason)
        if ku is not None and isinstance(ku.value, x509.KeyUsage) and not ku.value.key_cert_sign:
            raise CertificateChainError(f"certificate {i} may not sign certificates", reason=reason)
    leaf = chain[0]
    bc = _ext(leaf, ExtensionOID.BASIC_CONSTRAINTS, reason)
    if bc is not None and isinstance(bc.value, x509.BasicConstraints) and bc.value.ca:
        raise CertificateChainError("signing certificate is a CA certificate", reason=reason)
    ku = _ext(leaf, ExtensionOID.KEY_USAGE, reason)
    if ku is not None and isinstance(ku.value, x509.KeyUsage) and not ku.value.digital_signature:
        raise CertificateChainError("signing certificate may not sign", reason=reason)
    return chain


def check_validity(certs: Sequence[x509.Certificate], now: datetime, *, reason: str) -> None:
    for i, cert in enumerate(certs):
        try:
            valid = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        except Exception as exc:
            raise CertificateChainError(f"malformed validity: {type(exc).__name__}", reason=reason) from None
        if not valid:
            raise CertificateChainError(
                f"certificate {i} ({common_name(cert.subject) or '?'}) is not valid at "
                f"{now.isoformat()} (valid {cert.not_valid_before_utc.isoformat()} .. "
                f"{cert.not_valid_after_utc.isoformat()})",
                reason=reason,
            )


# ------------------------------------------------------------------ FWID extension (DER)

# The DICE extensions are small; more elements than this in one constructed value is an error.
_MAX_FWID_ELEMENTS = 64


def _children(buf: bytes, parent: Tlv) -> list[Tlv]:
    return read_children(buf, parent, max_children=_MAX_FWID_ELEMENTS)


def _fwid_from_pair(buf: bytes, pair: Tlv) -> bytes:
    """FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }"""
    kids = _children(buf, pair)
    if len(kids) != 2 or kids[0].tag != TAG_OID or kids[1].tag != TAG_OCTET_STRING:
        raise DerError("FWID is not SEQUENCE { OID, OCTET STRING }")
    oid = decode_oid(kids[0].value(buf))
    digest = kids[1].value(buf)
    want = _HASH_OIDS.get(oid)
    if want is None or len(digest) != want:
        raise DerError("FWID hash algorithm unsupported or digest length wrong")
    return bytes(digest)


def _parse_fwid_extension(value: bytes, oid: x509.ObjectIdentifier) -> bytes:
    top = read_tlv(value, 0)
    if top.tag != TAG_SEQUENCE or top.end != len(value):
        raise DerError("extension is not one SEQUENCE")
    kids = _children(value, top)
    # DICE TcbInfo: [6] IMPLICIT FWIDLIST (constructed context tag 6 = 0xA6).
    for kid in kids:
        if kid.tag == 0xA6:
            fwids = _children(value, kid)
            if not fwids or fwids[0].tag != TAG_SEQUENCE:
                raise DerError("empty FWID list")
            return _fwid_from_pair(value, fwids[0])
    if oid == OID_DICE_TCBINFO:
        raise DerError("TcbInfo without fwids")
    # Hopper layout: the last element is the FWID pair (NVIDIA takes the last 48 bytes).
    if not kids or kids[-1].tag != TAG_SEQUENCE or kids[-1].end != len(value):
        raise DerError("no trailing FWID")
    return _fwid_from_pair(value, kids[-1])


def extract_fwid(cert: x509.Certificate, *, prefer_tcbinfo: bool, reason: str) -> bytes:
    """The FWID from the TCG DICE extension of the attestation-key certificate."""
    order = (OID_DICE_TCBINFO, OID_DICE_FWID_HOPPER) if prefer_tcbinfo else (OID_DICE_FWID_HOPPER, OID_DICE_TCBINFO)
    for oid in order:
        try:
            ext = _ext(cert, oid, reason)
        except CertificateChainError as exc:
            raise CertificateChainError(str(exc), reason=reason) from None
        if ext is None:
            continue
        val = ext.value
        if not isinstance(val, x509.UnrecognizedExtension):
            raise CertificateChainError("FWID extension has an unexpected type", reason=reason)
        try:
            return _parse_fwid_extension(val.value, oid)
        except (DerError, IndexError) as exc:
            raise CertificateChainError(f"malformed FWID extension: {exc}", reason=reason) from None
    raise CertificateChainError("FWID extension not found in the signing certificate", reason=reason)


def sha256_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
