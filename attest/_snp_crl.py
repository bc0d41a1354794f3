"""AMD SEV-SNP revocation: the ARK's certificate revocation list (CRL).

AMD KDS publishes one CRL per product and key family, signed by that product's ARK:
``/vcek/v1/{product}/crl`` and ``/vlek/v1/{product}/crl``.  The ARK issues only the ASK (VCEK
chains) and the ASVK (VLEK chains), so the CRL says whether the intermediate of an
endorsement chain has been revoked; VCEKs and VLEKs themselves are not listed anywhere.  The
ASK and ASVK are pinned in this package, and pinning alone cannot learn of a revocation: this
check is what tells a verifier that AMD has withdrawn a pinned intermediate.

``check_snp_crl`` applies, in order:

R1. Parse: one CRL, DER or PEM, at most ``MAX_CRL_BYTES``; the TBSCertList's signature
    algorithm must be byte-identical to the outer one and name RSASSA-PSS
    (``attest.snp.crl``).
R2. Issuer: the pinned ARK of the chain's product, by name and, when both are present, by
    key identifier; signature RSASSA-PSS / SHA-384 / MGF1-SHA-384 / salt 48 under the pinned
    ARK key, with the parameters fixed rather than read from the CRL (``attest.snp.crl``).
R3. Scope: no critical CRL or entry extension other than the two every AMD CRL may carry
    (authority key identifier, CRL number): a delta CRL, an issuing-distribution-point
    restriction or an indirect CRL is refused rather than misread (``attest.snp.crl``).
R4. Freshness (for the operator's CRL): ``thisUpdate <= now <= nextUpdate``, and
    ``nextUpdate`` present (``attest.snp.crl_expired``).
R5. Revocation: the serial of the chain's ASK (VCEK) or ASVK (VLEK) must not be listed,
    whatever the entry's reason (``attest.snp.revoked``).

Where the CRL comes from is the caller's choice: :class:`SnpCrlDir` (files the operator
refreshes), :class:`SnpCrlFile` (one file, for the CLI) or ``KdsClient`` (fetched from AMD and
cached).  A CRL that arrives inside the evidence (the extended-report certificate table's
``crl`` entry) is checked for R1-R3 and R5 only: it is authentic but the host chose it, so an
old one could hide a newer revocation; it can deny, never vouch.
"""

from __future__ import annotations

import base64
import os
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID

from ._der import TAG_OID, CertificateParts, DerError, encode_oid, read_tlv, split_crl
from ._errors import AttestationError, CertificateChainError, CollateralError
from ._files import read_limited
from ._snp_certs import PRODUCTS, SnpTrustRoots, default_trust_roots
from ._x509util import OID_RSASSA_PSS

__all__ = [
    "MAX_CRL_BYTES",
    "SnpCrlStatus",
    "SnpCrlSource",
    "SnpCrlDir",
    "SnpCrlFile",
    "load_snp_crl",
    "check_snp_crl",
    "crl_file_name",
]

R_CRL = "attest.snp.crl"
R_CRL_EXPIRED = "attest.snp.crl_expired"
R_REVOKED = "attest.snp.revoked"

#: AMD's CRLs are under 1 KiB; 64 KiB leaves room for ~2000 entries.
MAX_CRL_BYTES = 64 * 1024
_KEY_TYPES = ("vcek", "vlek")
# Extensions an AMD CRL carries; anything else marked critical changes the CRL's meaning.
_KNOWN_CRL_EXTENSIONS = {ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.CRL_NUMBER}
_KNOWN_ENTRY_EXTENSIONS = {x509.oid.CRLEntryExtensionOID.CRL_REASON, x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE}
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]*)-----END X509 CRL-----")
_PSS_OID = encode_oid(OID_RSASSA_PSS)


def _crl_err(msg: str) -> CollateralError:
    return CollateralError(msg, reason=R_CRL)


@dataclass(frozen=True)
class SnpCrlStatus:
    """What a successful check established (no secrets: all of it is public)."""

    product: str
    key_type: str  # "vcek" (the ASK was checked) | "vlek" (the ASVK was checked)
    crl_number: int | None
    this_update: datetime
    next_update: datetime
    entries: int  # revoked certificates listed (none of them ours)


class SnpCrlSource(Protocol):
    """Where the verifier gets the operator's CRL for a product and key family.  ``None`` means
    "none available" (the verifier then denies with ``attest.snp.crl``)."""

    def snp_crl(self, product: str, key_type: str) -> bytes | None: ...


def crl_file_name(product: str, key_type: str) -> str:
    """``milan_vcek.crl``: the file :class:`SnpCrlDir` reads for a product and key family."""
    return f"{product.lower()}_{key_type}.crl"


def _crl_der(data: bytes) -> tuple[bytes, CertificateParts]:
    """R1 on the raw bytes, before any library parses a field: size, one PEM block or DER,
    the strict outer shape, identical algorithm identifiers naming RSASSA-PSS."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _crl_err("CRL must be bytes")
    blob = bytes(data)
    if not blob or len(blob) > MAX_CRL_BYTES:
        raise _crl_err(f"CRL is empty or larger than {MAX_CRL_BYTES} bytes")
    try:
        if blob.lstrip().startswith(b"-----BEGIN"):
            blocks = _PEM_CRL.findall(blob)
            if len(blocks) != 1 or blob.count(b"-----BEGIN") != 1:
                raise _crl_err("PEM input must hold exactly one X509 CRL")
            der = base64.b64decode(b"".join(blocks[0].split()), validate=True)
        else:
            der = blob
        parts = split_crl(der)
        alg = read_tlv(parts.algorithm, 0)
        oid = read_tlv(parts.algorithm, alg.value_start, alg.end)
    except CollateralError:
        raise
    except (DerError, ValueError):
        raise _crl_err("malformed CRL") from None
    if parts.tbs_algorithm != parts.algorithm:
        raise _crl_err("CRL outer and TBS signature algorithms differ")
    if oid.tag != TAG_OID or oid.value(parts.algorithm) != _PSS_OID:
        raise _crl_err("CRL is not signed with RSASSA-PSS")
    return der, parts


def _parse(der: bytes) -> x509.CertificateRevocationList:
    try:
        with warnings.catch_warnings():
            # narrow filters (catch_warnings is process-global): out-of-spec names and serials
            # must fail as "malformed" or on their merits, not spam the caller's log
            warnings.filterwarnings("ignore", message="Parsed a serial number", category=CryptographyDeprecationWarning)
            warnings.filterwarnings("ignore", message="Attribute's length", category=UserWarning)
            crl = x509.load_der_x509_crl(der)
            _ = crl.issuer, crl.extensions, crl.last_update_utc, crl.next_update_utc
            _ = [(e.serial_number, e.extensions) for e in crl]
    except Exception:  # ValueError, cryptography's InvalidVersion, ...
        raise _crl_err("malformed CRL") from None
    return crl


def load_snp_crl(data: bytes) -> tuple[bytes, x509.CertificateRevocationList]:
    """R1: one CRL (DER or PEM) -> (DER, parsed); the signature is NOT checked (that needs the
    product: :func:`check_snp_crl`).  Raises ``CollateralError(attest.snp.crl)``."""
    der, _parts = _crl_der(data)
    return der, _parse(der)


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def check_snp_crl(
    data: bytes,
    product: str,
    key_type: str,
    *,
    now: datetime,
    trust_roots: SnpTrustRoots | None = None,
    require_current: bool = True,
) -> SnpCrlStatus:
    """Check ``data`` as the ARK CRL for ``product`` and that it does not revoke the pinned
    intermediate of a ``key_type`` ("vcek" -> ASK, "vlek" -> ASVK) chain.  ``now`` without a
    timezone is taken as UTC.  ``require_current=False`` skips R4 (host-supplied CRLs: they can only
    deny).  Raises ``CollateralError`` (``attest.snp.crl`` / ``attest.snp.crl_expired``) or
    ``CertificateChainError`` (``attest.snp.revoked``)."""
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    roots = trust_roots if trust_roots is not None else default_trust_roots()
    pr = roots.products.get(product)
    if pr is None or key_type not in _KEY_TYPES:
        raise _crl_err(f"no pinned roots for {product} {key_type}")
    inter = pr.ask if key_type == "vcek" else pr.asvk
    if inter is None:
        raise _crl_err(f"no pinned ASVK for {product}")
    der, parts = _crl_der(data)

    # R2. Signature first (fixed PSS parameters, pinned ARK key): nothing a forger wrote is
    # parsed beyond the outer shape.  Then issuer name and key identifier.
    key = pr.ark.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _crl_err("pinned ARK key is not RSA")
    try:
        key.verify(parts.signature, parts.tbs,
                   padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48), hashes.SHA384())
    except InvalidSignature:
        raise _crl_err(f"CRL signature does not verify under the {product} ARK") from None
    crl = _parse(der)
    try:
        if crl.issuer.public_bytes() != pr.ark.subject.public_bytes():
            raise _crl_err(f"CRL issuer is not the {product} ARK")
        try:
            aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            aki = None
        ski = _ski(pr.ark)
        if aki is not None and ski is not None and aki != ski:
            raise _crl_err(f"CRL authority key identifier is not the {product} ARK's")

        # R3. Scope: refuse critical extensions whose meaning we do not implement.
        for ext in crl.extensions:
            if ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
                raise _crl_err(f"CRL has an unsupported critical extension {ext.oid.dotted_string}")
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        serials: set[int] = set()
        for entry in crl:
            for ext in entry.extensions:
                if ext.critical and ext.oid not in _KNOWN_ENTRY_EXTENSIONS:
                    raise _crl_err(f"CRL entry has an unsupported critical extension {ext.oid.dotted_string}")
            serials.add(entry.serial_number)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
    except CollateralError:
        raise
    except Exception:
        # cryptography parses extensions lazily: a malformed one surfaces here.
        raise _crl_err("malformed CRL") from None

    # R4. Freshness.
    if require_current:
        if next_update is None:
            raise CollateralError(f"{product} ARK CRL has no nextUpdate", reason=R_CRL_EXPIRED)
        if not this_update <= now <= next_update:
            raise CollateralError(
                f"{product} ARK CRL is not current at {now.isoformat()} "
                f"(thisUpdate {this_update.isoformat()}, nextUpdate {next_update.isoformat()})",
                reason=R_CRL_EXPIRED,
            )

    # R5. The pinned intermediate of this chain must not be listed.
    if inter.serial_number in serials:
        role = "ASK" if key_type == "vcek" else "ASVK"
        raise CertificateChainError(
            f"the {product} {role} (serial {inter.serial_number:x}) is revoked by the ARK's CRL",
            reason=R_REVOKED,
        )
    return SnpCrlStatus(
        product=product,
        key_type=key_type,
        crl_number=number,
        this_update=this_update,
        next_update=next_update if next_update is not None else this_update,
        entries=len(serials),
    )


class SnpCrlDir:
    """A directory of ARK CRLs the operator keeps current, one file per product and key family:
    ``milan_vcek.crl`` (from ``https://kdsintf.amd.com/vcek/v1/Milan/crl``), ``genoa_vlek.crl``
    (``/vlek/v1/Genoa/crl``) and so on; DER or PEM.  Files are read afresh on every request, so
    replacing one (write a temporary file, rename it over) takes effect at once.  A product or
    key family without a file has no CRL: its chains are denied when this source is in use."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise _crl_err(f"SNP CRL directory {self.path} does not exist")

    def __repr__(self) -> str:
        return f"SnpCrlDir({str(self.path)!r})"

    def files(self) -> dict[tuple[str, str], Path]:
        """(product, key type) -> path for every CRL file present; the directory itself
        missing is an error (``attest.snp.crl``)."""
        if not self.path.is_dir():
            raise _crl_err(f"SNP CRL directory {self.path} does not exist")
        out: dict[tuple[str, str], Path] = {}
        for product in PRODUCTS:
            for kt in _KEY_TYPES:
                p = self.path / crl_file_name(product, kt)
                if p.is_file():
                    out[(product, kt)] = p
        return out

    def next_updates(self, *, trust_roots: SnpTrustRoots | None = None) -> dict[tuple[str, str], datetime | None]:
        """(product, key type) -> nextUpdate of each CRL file present, for expiry monitoring;
        ``None`` for a file that does not pass R1-R3 and R5 (unreadable, not AMD's, or revoking
        the pinned intermediate): requests it serves would be denied."""
        out: dict[tuple[str, str], datetime | None] = {}
        for (product, kt), path in self.files().items():
            try:
                data = read_limited(path, MAX_CRL_BYTES, what="SNP CRL", error=_crl_err)
                status = check_snp_crl(data, product, kt, now=datetime.now(UTC), trust_roots=trust_roots,
                                       require_current=False)
            except AttestationError:
                out[(product, kt)] = None
                continue
            out[(product, kt)] = status.next_update
        return out

    def snp_crl(self, product: str, key_type: str) -> bytes | None:
        if product not in PRODUCTS or key_type not in _KEY_TYPES:
            return None
        p = self.path / crl_file_name(product, key_type)
        if not p.is_file():
            return None
        return read_limited(p, MAX_CRL_BYTES, what="SNP CRL", error=_crl_err)


class SnpCrlFile:
    """One CRL file offered for every product (``weightseal attest verify --snp-crl FILE``); the
    issuer check (R2) decides whether it belongs to the chain being verified."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SnpCrlFile({str(self.path)!r})"

    def snp_crl(self, product: str, key_type: str) -> bytes | None:
        return read_limited(self.path, MAX_CRL_BYTES, what="SNP CRL", error=_crl_err)
