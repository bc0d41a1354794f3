"""Intel SGX/TDX PKI helpers: the pinned Intel SGX Root CA, strict PEM chain parsing,
certificate chain checks, raw (r||s) ECDSA P-256 verification and CRL checks.

Every function raises only our typed errors, with the ``attest.tdx.*`` reason the caller asks
for; nothing from ``cryptography`` escapes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from ._errors import AttestationError, CertificateChainError
from ._tdx_der import ECDSA_WITH_SHA256_ALGID, DerError, split_certificate

__all__ = [
    "INTEL_SGX_ROOT_CA_PEM_NAME",
    "intel_sgx_root_ca",
    "parse_pem_chain",
    "ChainCert",
    "verify_chain",
    "p256_from_raw",
    "verify_raw_p256",
    "load_crl",
    "check_crl",
    "common_name",
]

INTEL_SGX_ROOT_CA_PEM_NAME = "intel_sgx_root_ca.pem"
_MAX_PEM_CHAIN = 64 * 1024
_MAX_CERTS = 8
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_WS = b" \t\r\n\x00"


@functools.lru_cache(maxsize=1)
def intel_sgx_root_ca() -> x509.Certificate:
    """The pinned Intel SGX Root CA shipped in ``weightseal.attest.roots``."""
    data = (
        resources.files("weightseal.attest.roots").joinpath(INTEL_SGX_ROOT_CA_PEM_NAME).read_bytes()
    )
    return x509.load_pem_x509_certificate(data)


def common_name(name: x509.Name) -> str:
    try:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:  # malformed name
        return ""
    if len(attrs) != 1 or not isinstance(attrs[0].value, str):
        return ""
    return attrs[0].value


def parse_pem_chain(data: bytes, *, reason: str) -> list[x509.Certificate]:
    """Strict PEM certificate list: only whitespace/NUL between blocks, canonical base64
    (re-encoding must give back the same characters), DER that parses."""
    if len(data) > _MAX_PEM_CHAIN:
        raise CertificateChainError("certificate chain too large", reason=reason)
    certs: list[x509.Certificate] = []
    pos = 0
    for m in _PEM_RE.finditer(data):
        if data[pos : m.start()].strip(_WS):
            raise CertificateChainError("unexpected bytes between PEM blocks", reason=reason)
        pos = m.end()
        body = bytes(b for b in m.group(1) if b not in b" \t\r\n")
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise CertificateChainError("bad base64 in PEM certificate", reason=reason) from None
        if base64.b64encode(der) != body:
            raise CertificateChainError("non-canonical base64 in PEM certificate", reason=reason)
        try:
            split_certificate(der)  # strict outer structure before handing it to the library
            certs.append(x509.load_der_x509_certificate(der))
        except (DerError, ValueError):
            raise CertificateChainError("malformed certificate", reason=reason) from None
        if len(certs) > _MAX_CERTS:
            raise CertificateChainError("too many certificates", reason=reason)
    if data[pos:].strip(_WS):
        raise CertificateChainError("unexpected bytes after PEM blocks", reason=reason)
    if not certs:
        raise CertificateChainError("no certificate found", reason=reason)
    return certs


def p256_from_raw(raw: bytes) -> ec.EllipticCurvePublicKey | None:
    """64-byte X||Y -> P-256 public key, or None if it is not a point on the curve."""
    if len(raw) != 64:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        return None


def verify_raw_p256(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """ECDSA P-256/SHA-256 with a 64-byte big-endian r||s signature."""
    if len(signature) != 64 or not isinstance(key.curve, ec.SECP256R1):
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _verify_cert_signature(child: x509.Certificate, parent: x509.Certificate) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = child.public_bytes(Encoding.DER)
        parts = split_certificate(der)
    except (DerError, ValueError):
        return False
    # Intel's SGX/TDX PKI signs everything with ecdsa-with-SHA256; both copies of the algorithm
    # identifier must say so, byte for byte.
    if parts.algorithm != ECDSA_WITH_SHA256_ALGID or parts.tbs_algorithm != ECDSA_WITH_SHA256_ALGID:
        return False
    key = parent.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return False
    try:
        key.verify(parts.signature, parts.tbs, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return bool(bc.ca)


@dataclass(frozen=True)
class ChainCert:
    cert: x509.Certificate
    der: bytes


def verify_chain(
    certs: Sequence[x509.Certificate],
    *,
    now: datetime,
    chain_reason: str,
    expired_reason: str,
    leaf_cn: Sequence[str],
    intermediate_cns: Sequence[str] = (),
) -> None:
    """Leaf first, root last.  The root must be the pinned Intel SGX Root CA (byte-equal);
    every certificate is signed by the next (ECDSA P-256/SHA-256), names chain, issuers are
    CAs, CNs have the expected roles; then every certificate is valid at ``now``.

    ``cryptography`` parses certificate fields lazily, so a malformed field can surface as a
    ``ValueError`` from any accessor: every such failure is a chain error."""
    try:
        _verify_chain(
            certs,
            now=now,
            chain_reason=chain_reason,
            expired_reason=expired_reason,
            leaf_cn=leaf_cn,
            intermediate_cns=intermediate_cns,
        )
    except AttestationError:
        raise
    except Exception:
        raise CertificateChainError("malformed certificate in chain", reason=chain_reason) from None


def _verify_chain(
    certs: Sequence[x509.Certificate],
    *,
    now: datetime,
    chain_reason: str,
    expired_reason: str,
    leaf_cn: Sequence[str],
    intermediate_cns: Sequence[str],
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    expected_len = 2 + (1 if intermediate_cns else 0)
    if len(certs) != expected_len:
        raise CertificateChainError(
            f"certificate chain has {len(certs)} certificates, expected {expected_len}",
            reason=chain_reason,
        )
    root = intel_sgx_root_ca()
    if certs[-1].public_bytes(Encoding.DER) != root.public_bytes(Encoding.DER):
        raise CertificateChainError(
            "chain does not end at the pinned Intel SGX Root CA", reason=chain_reason
        )
    leaf_name = common_name(certs[0].subject)
    if not any(s in leaf_name for s in leaf_cn):
        raise CertificateChainError("leaf certificate has an unexpected role", reason=chain_reason)
    if intermediate_cns and common_name(certs[1].subject) not in intermediate_cns:
        raise CertificateChainError("intermediate CA has an unexpected role", reason=chain_reason)
    chain = list(certs)
    for i, child in enumerate(chain):
        parent = chain[i + 1] if i + 1 < len(chain) else chain[i]  # root: self-signed
        if child.issuer.public_bytes() != parent.subject.public_bytes():
            raise CertificateChainError("issuer/subject names do not chain", reason=chain_reason)
        if i > 0 and not _is_ca(child):
            raise CertificateChainError("issuing certificate is not a CA", reason=chain_reason)
        if not _verify_cert_signature(child, parent):
            raise CertificateChainError(
                "certificate signature does not verify", reason=chain_reason
            )
    leaf_key = chain[0].public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or not isinstance(
        leaf_key.curve, ec.SECP256R1
    ):
        raise CertificateChainError("leaf key is not ECDSA P-256", reason=chain_reason)
    for c in chain:
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise AttestationError(
                f"certificate '{common_name(c.subject)}' is not valid at {now.isoformat()} "
                f"(valid {c.not_valid_before_utc.isoformat()} .. {c.not_valid_after_utc.isoformat()})",
                reason=expired_reason,
            )


def load_crl(data: bytes, *, reason: str) -> x509.CertificateRevocationList:
    """A CRL given as DER, PEM, or hex-encoded DER (Intel PCS returns any of the three)."""
    if len(data) > 4 * 1024 * 1024:
        raise AttestationError("CRL too large", reason=reason)
    try:
        s = data.strip()
        if s.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(s)
        if s and all(c in b"0123456789abcdefABCDEF" for c in s):
            return x509.load_der_x509_crl(binascii.unhexlify(s))
        return x509.load_der_x509_crl(data)
    except (ValueError, binascii.Error):
        raise AttestationError("malformed CRL", reason=reason) from None


def check_crl(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    subjects: Sequence[x509.Certificate],
    *,
    now: datetime,
    collateral_reason: str,
    expired_reason: str,
    revoked_reason: str,
) -> None:
    """CRL issued and signed by ``issuer``, current at ``now``, and revoking none of ``subjects``."""
    try:
        if crl.issuer.public_bytes() != issuer.subject.public_bytes():
            raise AttestationError("CRL issuer does not match its CA", reason=collateral_reason)
        key = issuer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(key):
            raise AttestationError("CRL signature does not verify", reason=collateral_reason)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
    except AttestationError:
        raise
    except Exception:
        raise AttestationError("malformed CRL", reason=collateral_reason) from None
    if next_update is None or not this_update <= now <= next_update:
        raise AttestationError(
            f"CRL '{common_name(crl.issuer)}' is not current at {now.isoformat()}",
            reason=expired_reason,
        )
    for s in subjects:
        if s.issuer.public_bytes() != crl.issuer.public_bytes():
            continue
        try:
            revoked = crl.get_revoked_certificate_by_serial_number(s.serial_number)
        except Exception:
            raise AttestationError("malformed CRL entry", reason=collateral_reason) from None
        if revoked is not None:
            raise AttestationError(
                f"certificate '{common_name(s.subject)}' (serial {s.serial_number:x}) is revoked",
                reason=revoked_reason,
            )
