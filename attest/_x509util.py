"""Small X.509 / DER helpers shared by the SEV-SNP verifier.

Only what the verifiers need and with hard bounds: DER helpers on the shared reader in
``_der`` (its ``DerError`` becomes ``X509Error`` here), certificate loading that
accepts DER or PEM (one or many) and never lets a library exception escape, the outer-vs-inner
signature-algorithm check RFC 5280 section 4.1.1.2 requires, and RSASSA-PSS verification with
fixed parameters.  Every function raises only ``_X509Error`` (a plain internal exception) that
the calling verifier translates into its own typed error with its own reason code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from . import _der
from ._der import (
    TAG_IA5STRING,
    TAG_INTEGER,
    TAG_SEQUENCE,
    CertificateParts,
    DerError,
    Tlv,
    decode_uint,
    split_certificate,
)

__all__ = [
    "X509Error",
    "Tlv",
    "read_tlv",
    "der_total_length",
    "split_der_and_rest",
    "load_certificates",
    "load_der_certificate",
    "CertParts",
    "cert_parts",
    "verify_rsa_pss_sha384",
    "verify_ecdsa",
    "der_small_uint",
    "der_ia5string",
    "MAX_CERT_BYTES",
    "MAX_CERTS",
]

MAX_CERT_BYTES = 16 * 1024  # one AMD/Intel/NVIDIA certificate is 1-3 KiB
MAX_CERTS = 16
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


class X509Error(Exception):
    """Internal: a certificate or DER structure is malformed or a signature does not verify."""


@contextmanager
def _der_errors() -> Iterator[None]:
    """Translate the shared reader's ``DerError`` into ``X509Error``."""
    try:
        yield
    except DerError as exc:
        raise X509Error(f"DER: {exc}") from None


def read_tlv(buf: bytes, off: int, limit: int | None = None) -> Tlv:
    """Read one DER TLV at ``off`` (single-byte tags, definite lengths up to 4 length bytes)."""
    with _der_errors():
        return _der.read_tlv(buf, off, limit)


def der_total_length(buf: bytes) -> int:
    """Length of the DER SEQUENCE at offset 0 (header + content)."""
    t = read_tlv(buf, 0)
    if t.tag != TAG_SEQUENCE:
        raise X509Error("DER: not a SEQUENCE")
    return t.end


def split_der_and_rest(buf: bytes) -> tuple[bytes, bytes]:
    """Split a buffer that starts with one DER SEQUENCE into (that DER, the rest)."""
    n = der_total_length(buf)
    return buf[:n], buf[n:]


def _load_der(der: bytes) -> x509.Certificate:
    if len(der) > MAX_CERT_BYTES:
        raise X509Error("certificate too large")
    try:
        with warnings.catch_warnings():
            # AMD KDS issues VCEK/VLEK certificates with serial number 0, which cryptography
            # parses with a deprecation warning.  The verifier never relies on the serial.
            # cryptography also emits UserWarnings for out-of-spec name attributes; a
            # malformed certificate must fail on its signature, not spam the caller's log.
            # The filters are narrow (by message) because catch_warnings is process-global.
            warnings.filterwarnings(
                "ignore", message="Parsed a serial number", category=CryptographyDeprecationWarning
            )
            warnings.filterwarnings("ignore", message="Attribute's length", category=UserWarning)
            cert = x509.load_der_x509_certificate(der)
            # Touch the fields the verifiers use so that lazy parsing errors surface here.
            _ = cert.tbs_certificate_bytes, cert.issuer, cert.subject, cert.signature_algorithm_oid
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key()
    except X509Error:
        raise
    except Exception as exc:  # cryptography raises ValueError and friends on malformed input
        raise X509Error(f"malformed certificate ({type(exc).__name__})") from None
    return cert


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Load exactly one DER certificate; trailing bytes other than zero padding are an error."""
    body, rest = split_der_and_rest(bytes(der))
    if rest.strip(b"\x00"):
        raise X509Error("trailing bytes after DER certificate")
    return _load_der(body)


def _pem_blocks(blob: bytes) -> list[bytes]:
    """DER bodies of every ``CERTIFICATE`` PEM block in ``blob`` (bounded)."""
    import base64
    import binascii

    out: list[bytes] = []
    pos = 0
    while True:
        b = blob.find(_PEM_BEGIN, pos)
        if b < 0:
            break
        e = blob.find(_PEM_END, b)
        if e < 0:
            raise X509Error("PEM: unterminated certificate block")
        body = blob[b + len(_PEM_BEGIN) : e]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise X509Error("PEM: bad base64") from None
        out.append(der)
        if len(out) > MAX_CERTS:
            raise X509Error("too many certificates")
        pos = e + len(_PEM_END)
    return out


def load_certificates(blob: bytes) -> list[tuple[bytes, x509.Certificate]]:
    """Load certificates from DER (one or more concatenated, optionally followed by PEM) or a
    PEM bundle (text around the blocks is ignored).

    Returns ``(der, certificate)`` pairs in input order.  Raises ``X509Error`` if nothing is
    found or anything is malformed.
    """
    blob = bytes(blob)
    out: list[tuple[bytes, x509.Certificate]] = []
    rest = blob
    while rest[:1] == b"\x30":  # one or more concatenated DER certificates
        der, rest = split_der_and_rest(rest)
        out.append((der, _load_der(der)))
        if len(out) > MAX_CERTS:
            raise X509Error("too many certificates")
        if not rest.strip(b"\x00 \t\r\n"):
            return out
    if _PEM_BEGIN not in rest:
        raise X509Error("no certificate found")
    for der in _pem_blocks(rest):
        out.append((der, load_der_certificate(der)))
    if len(out) > MAX_CERTS:
        raise X509Error("too many certificates")
    return out


CertParts = CertificateParts  # raw DER pieces of a certificate for strict signature checks


def cert_parts(der: bytes) -> CertParts:
    """Walk Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signatureValue } strictly."""
    with _der_errors():
        return split_certificate(der, nonempty_signature=True, whole_tbs=False)


def verify_rsa_pss_sha384(issuer: x509.Certificate, der: bytes, cert: x509.Certificate) -> None:
    """Check that ``issuer`` signed ``cert`` with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48.

    The parameters are fixed (AMD's certificate spec), not read from the certificate; the
    certificate's two AlgorithmIdentifiers must be byte-identical and name RSASSA-PSS.
    """
    parts = cert_parts(der)
    if parts.tbs_algorithm != parts.algorithm:
        raise X509Error("certificate: outer and TBS signature algorithms differ")
    if cert.signature_algorithm_oid.dotted_string != OID_RSASSA_PSS:
        raise X509Error("certificate: not signed with RSASSA-PSS")
    if cert.issuer != issuer.subject:
        raise X509Error("certificate: issuer name does not match")
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise X509Error("issuer key is not RSA")
    try:
        key.verify(
            parts.signature,
            parts.tbs,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
            hashes.SHA384(),
        )
    except InvalidSignature:
        raise X509Error("certificate signature does not verify") from None
    except Exception as exc:  # pragma: no cover - defensive
        raise X509Error(f"certificate signature check failed ({type(exc).__name__})") from None


def verify_ecdsa(
    key: ec.EllipticCurvePublicKey, signature_der: bytes, data: bytes, algorithm: hashes.HashAlgorithm
) -> bool:
    try:
        key.verify(signature_der, data, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    except Exception:  # malformed signature encodings etc.
        return False
    return True


def der_small_uint(value: bytes, max_value: int = 255) -> int:
    """Decode a DER INTEGER (whole TLV) holding a small non-negative value."""
    with _der_errors():
        t = _der.read_single(value)
        if t.tag != TAG_INTEGER or t.value_len > 4:
            raise X509Error("expected a small DER INTEGER")
        return decode_uint(t.value(value), max_value)


def der_ia5string(value: bytes, max_len: int = 64) -> str:
    """Decode a DER IA5String TLV (printable ASCII only)."""
    with _der_errors():
        t = _der.read_single(value)
    if t.tag != TAG_IA5STRING or t.value_len > max_len:
        raise X509Error("expected an IA5String")
    raw = t.value(value)
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise X509Error("IA5String has non-printable characters")
    return raw.decode("ascii")
