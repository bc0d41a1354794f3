"""AMD SEV-SNP endorsement certificates: pinned roots, the extended-report certificate table,
and the VCEK/VLEK -> ASK/ASVK -> ARK chain (AMD "Versioned Chip Endorsement Key (VCEK)
Certificate and KDS Interface Specification" and the VLEK variant).

Trust model: the ARK and the ASK/ASVK of every supported product are PINNED (shipped in
``weightseal/attest/roots/amd_<product>_{ark,ask,asvk}.pem``).  Evidence may carry ASK/ARK
certificates (a KDS ``cert_chain`` PEM, an extended-report certificate table), but such a
certificate is only tolerated if it is byte-identical to the pinned one; it is never used as a
trust anchor.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ._errors import CertificateChainError, ClaimsError, EvidenceParseError
from ._x509util import (
    X509Error,
    der_ia5string,
    der_small_uint,
    der_total_length,
    load_certificates,
    read_tlv,
    verify_rsa_pss_sha384,
)

__all__ = [
    "PRODUCTS",
    "SnpProductRoots",
    "SnpTrustRoots",
    "default_trust_roots",
    "SnpEndorsement",
    "SnpCertBundle",
    "CERT_TABLE_GUIDS",
    "parse_snp_cert_table",
    "build_snp_cert_table",
    "split_snp_certs",
    "verify_snp_chain",
    "verify_snp_endorsement",
    "normalize_product",
]

PRODUCTS = ("Milan", "Genoa", "Turin")

# GHCB specification (MSG_REPORT_REQ extended guest request), certificate table GUIDs.
CERT_TABLE_GUIDS: dict[str, uuid.UUID] = {
    "ark": uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"),
    "ask": uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"),  # also used for the ASVK
    "vcek": uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"),
    "vlek": uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
    "crl": uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea"),
}
_GUID_BY_BYTES: dict[bytes, str] = {}
for _name, _g in CERT_TABLE_GUIDS.items():
    # The GHCB spec writes the GUID as text; hypervisors store it in RFC 4122 byte order
    # (Linux/QEMU/virtee/go-sev-guest) but a mixed-endian (Microsoft) encoding is also seen.
    _GUID_BY_BYTES[_g.bytes] = _name
    _GUID_BY_BYTES[_g.bytes_le] = _name

CERT_TABLE_ENTRY = struct.Struct("<16sII")
MAX_TABLE_ENTRIES = 64
MAX_CERTS_BLOB = 1 << 20

# AMD KDS VCEK/VLEK extension OIDs (prefix 1.3.6.1.4.1.3704.1.)
_OID = "1.3.6.1.4.1.3704.1."
OID_STRUCT_VERSION = _OID + "1"
OID_PRODUCT_NAME = _OID + "2"
OID_BL_SPL = _OID + "3.1"
OID_TEE_SPL = _OID + "3.2"
OID_SNP_SPL = _OID + "3.3"
OID_UCODE_SPL = _OID + "3.8"
OID_FMC_SPL = _OID + "3.9"
OID_HWID = _OID + "4"
OID_CSP_ID = _OID + "5"


def _chain_err(msg: str, reason: str = "attest.snp.chain") -> CertificateChainError:
    return CertificateChainError(msg, reason=reason)


def normalize_product(product: str) -> tuple[str, str | None]:
    """``"milan"`` -> ("Milan", None); ``"Milan-B0"`` -> ("Milan", "Milan-B0")."""
    if not isinstance(product, str):
        raise ClaimsError("product must be a string", reason="attest.snp.product")
    base, sep, _ = product.strip().partition("-")
    for p in PRODUCTS:
        if base.lower() == p.lower():
            return p, (p + product.strip()[len(base) :]) if sep else None
    raise ClaimsError(f"unknown SEV-SNP product {product!r}", reason="attest.snp.product")


# ---------------------------------------------------------------------------------------------
# Pinned roots


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class SnpProductRoots:
    """Pinned ARK, ASK and ASVK of one product.  The constructor checks that the ARK is a
    self-signed RSA key and that it signed the ASK and the ASVK (RSASSA-PSS SHA-384)."""

    product: str
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate | None = None
    ark_der: bytes = field(init=False, repr=False)
    ask_der: bytes = field(init=False, repr=False)
    asvk_der: bytes | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ark_der", _der(self.ark))
        object.__setattr__(self, "ask_der", _der(self.ask))
        object.__setattr__(self, "asvk_der", _der(self.asvk) if self.asvk is not None else None)
        try:
            if not isinstance(self.ark.public_key(), rsa.RSAPublicKey):
                raise X509Error("ARK key is not RSA")
            verify_rsa_pss_sha384(self.ark, self.ark_der, self.ark)  # self-signed
            verify_rsa_pss_sha384(self.ark, self.ask_der, self.ask)
            if self.asvk is not None and self.asvk_der is not None:
                verify_rsa_pss_sha384(self.ark, self.asvk_der, self.asvk)
        except X509Error as exc:
            raise _chain_err(f"pinned {self.product} roots are inconsistent: {exc}") from None

    def all_der(self) -> tuple[bytes, ...]:
        return tuple(d for d in (self.ark_der, self.ask_der, self.asvk_der) if d is not None)

    def intermediates(self) -> list[tuple[str, x509.Certificate]]:
        out: list[tuple[str, x509.Certificate]] = [("vcek", self.ask)]
        if self.asvk is not None:
            out.append(("vlek", self.asvk))
        return out


@dataclass(frozen=True)
class SnpTrustRoots:
    """The set of pinned AMD roots the verifier trusts, by product name."""

    products: Mapping[str, SnpProductRoots]

    @classmethod
    def from_pem(cls, pems: Mapping[str, Iterable[bytes]]) -> SnpTrustRoots:
        """``{"Milan": [ark_pem, ask_pem, asvk_pem], ...}``: build (and check) a trust store."""
        out: dict[str, SnpProductRoots] = {}
        for product, blobs in pems.items():
            certs = [c for b in blobs for _, c in _load_or_chain_err(b)]
            if len(certs) not in (2, 3):
                raise _chain_err(f"{product}: need ARK, ASK and optionally ASVK")
            ark, ask = certs[0], certs[1]
            out[product] = SnpProductRoots(product, ark, ask, certs[2] if len(certs) == 3 else None)
        return cls(out)


def _load_or_chain_err(blob: bytes) -> list[tuple[bytes, x509.Certificate]]:
    try:
        return load_certificates(blob)
    except X509Error as exc:
        raise _chain_err(f"malformed certificate: {exc}") from None


@functools.lru_cache(maxsize=1)
def default_trust_roots() -> SnpTrustRoots:
    """The AMD ARK/ASK/ASVK for Milan, Genoa and Turin shipped in the package."""
    pkg = resources.files("weightseal.attest.roots")
    pems: dict[str, list[bytes]] = {}
    for product in PRODUCTS:
        p = product.lower()
        pems[product] = [
            pkg.joinpath(f"amd_{p}_{role}.pem").read_bytes() for role in ("ark", "ask", "asvk")
        ]
    return SnpTrustRoots.from_pem(pems)


# ---------------------------------------------------------------------------------------------
# Certificate table (SNP_GET_EXT_REPORT / configfs-tsm auxblob)


def parse_snp_cert_table(blob: bytes) -> dict[str, bytes]:
    """Parse an extended-report certificate table into ``{"vcek"|"vlek"|"ask"|"ark"|"crl"|
    <guid>: bytes}``.  Entries: GUID[16], offset u32, length u32 (offsets from the table start),
    terminated by an all-zero entry.  Raises ``EvidenceParseError(reason="attest.snp.parse")``."""
    blob = bytes(blob)
    if len(blob) > MAX_CERTS_BLOB:
        raise EvidenceParseError("certificate table too large", reason="attest.snp.parse")
    out: dict[str, bytes] = {}
    off = 0
    while True:
        if off + CERT_TABLE_ENTRY.size > len(blob):
            raise EvidenceParseError("certificate table is not terminated", reason="attest.snp.parse")
        guid, c_off, c_len = CERT_TABLE_ENTRY.unpack_from(blob, off)
        off += CERT_TABLE_ENTRY.size
        if c_off == 0 and c_len == 0 and not any(guid):
            return out
        if len(out) >= MAX_TABLE_ENTRIES:
            raise EvidenceParseError("certificate table has too many entries", reason="attest.snp.parse")
        if c_len == 0 or c_off + c_len > len(blob):
            raise EvidenceParseError("certificate table entry out of range", reason="attest.snp.parse")
        name = _GUID_BY_BYTES.get(guid, str(uuid.UUID(bytes=guid)))
        if name in out:
            raise EvidenceParseError(f"certificate table has two {name} entries", reason="attest.snp.parse")
        out[name] = blob[c_off : c_off + c_len]


def build_snp_cert_table(entries: Mapping[str, bytes]) -> bytes:
    """Inverse of :func:`parse_snp_cert_table` (RFC 4122 GUID byte order), e.g. for hosts/tests."""
    items = list(entries.items())
    header_len = (len(items) + 1) * CERT_TABLE_ENTRY.size
    header = b""
    body = b""
    for name, data in items:
        g = CERT_TABLE_GUIDS[name] if name in CERT_TABLE_GUIDS else uuid.UUID(name)
        header += CERT_TABLE_ENTRY.pack(g.bytes, header_len + len(body), len(data))
        body += data
    return header + CERT_TABLE_ENTRY.pack(b"\x00" * 16, 0, 0) + body


# ---------------------------------------------------------------------------------------------
# Splitting supplied certificates into leaves and CA certificates


@dataclass
class SnpCertBundle:
    """Certificates supplied with a report, classified.  ``leaves``: (role hint from the
    table or None, DER, cert) with EC keys; ``cas``: (DER, cert) with RSA keys."""

    leaves: list[tuple[str | None, bytes, x509.Certificate]] = field(default_factory=list)
    cas: list[tuple[bytes, x509.Certificate]] = field(default_factory=list)
    crl: bytes | None = None  # the table's "crl" entry (host-supplied ARK CRL), unparsed


def _looks_like_der(blob: bytes) -> bool:
    if blob[:1] != b"\x30":
        return False
    try:
        der_total_length(blob)
    except X509Error:
        return False
    return True


def split_snp_certs(certs: bytes | None) -> SnpCertBundle:
    """Step 3: accept (a) one DER or PEM VCEK/VLEK, (b) VCEK/VLEK + ASK/ASVK + ARK as a PEM
    bundle, concatenated DER, or a DER leaf followed by PEM, or (c) an extended-report
    certificate table (the VCEK, VLEK, ASK and ARK entries, and the CRL entry kept unparsed in
    ``bundle.crl`` for the revocation check)."""
    bundle = SnpCertBundle()
    if certs is None:
        return bundle
    if not isinstance(certs, bytes | bytearray | memoryview):
        raise EvidenceParseError("certificates must be bytes", reason="attest.snp.parse")
    blob = bytes(certs)
    if not blob.strip(b"\x00 \t\r\n"):
        return bundle
    if len(blob) > MAX_CERTS_BLOB:
        raise EvidenceParseError("certificate data too large", reason="attest.snp.parse")
    pieces: list[tuple[str | None, bytes]]
    starts_with_guid = blob[:16] in _GUID_BY_BYTES
    if _looks_like_der(blob) or (not starts_with_guid and b"-----BEGIN CERTIFICATE-----" in blob):
        pieces = [(None, blob)]
    else:
        table = parse_snp_cert_table(blob)
        pieces = [(name, data) for name, data in table.items() if name in ("vcek", "vlek", "ask", "ark")]
        bundle.crl = table.get("crl")
    for hint, data in pieces:
        for der, cert in _load_or_chain_err(data):
            key = cert.public_key()
            if isinstance(key, ec.EllipticCurvePublicKey):
                if hint in ("ask", "ark"):
                    raise _chain_err(f"table {hint} entry holds an end-entity key")
                bundle.leaves.append((hint, der, cert))
            elif isinstance(key, rsa.RSAPublicKey):
                if hint in ("vcek", "vlek"):
                    raise _chain_err(f"table {hint} entry holds an RSA (CA) key")
                bundle.cas.append((der, cert))
            else:
                raise _chain_err("unexpected certificate key type")
    return bundle


# ---------------------------------------------------------------------------------------------
# Chain verification and VCEK/VLEK extensions


@dataclass(frozen=True)
class SnpEndorsement:
    """A VCEK/VLEK that chains to a pinned AMD root, with its AMD extensions decoded."""

    product: str  # "Milan" | "Genoa" | "Turin" (from the pinned chain)
    product_name: str | None  # productName extension, e.g. "Milan-B0" / "Turin"
    key_type: str  # "vcek" | "vlek"
    public_key: ec.EllipticCurvePublicKey = field(repr=False)
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None
    hwid: bytes | None  # VCEK only: 64 bytes (8 on Turin)
    csp_id: str | None  # VLEK only
    not_before: datetime
    not_after: datetime
    leaf_der: bytes = field(repr=False)


def _ensure_utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime")
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise _chain_err(
            f"{what} certificate is not valid at {now.isoformat()} "
            f"(valid {cert.not_valid_before_utc.isoformat()} .. {cert.not_valid_after_utc.isoformat()})",
            reason="attest.snp.expired",
        )


def _ext_raw(cert: x509.Certificate) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        exts = list(cert.extensions)
    except Exception as exc:
        raise _chain_err(f"malformed certificate extensions ({type(exc).__name__})") from None
    for ext in exts:
        oid = ext.oid.dotted_string
        if not oid.startswith(_OID):
            continue
        val = ext.value
        if not isinstance(val, x509.UnrecognizedExtension):
            raise _chain_err(f"unexpected AMD extension encoding {oid}")
        out[oid] = bytes(val.value)
    return out


def _decode_hwid(value: bytes | None, want: int) -> bytes | None:
    """The VCEK hwID extension value.  AMD KDS has always put the raw bytes (64, or 8 on Turin)
    into extnValue without an ASN.1 tag; AMD announced (2023) a switch to a proper DER OCTET
    STRING, so that form is accepted too (as go-sev-guest and trustee do).  Anything else: None."""
    if value is None:
        return None
    if len(value) == want:
        return value
    try:
        t = read_tlv(value, 0)
    except X509Error:
        return None
    if t.tag != 0x04 or t.end != len(value) or t.value_len != want:
        return None
    return t.value(value)


def _decode_leaf_extensions(
    ext: dict[str, bytes], key_type: str, product: str
) -> tuple[str | None, int, int, int, int, int | None, bytes | None, str | None]:
    def spl(oid: str) -> int:
        if oid not in ext:
            raise _chain_err(f"{key_type.upper()} lacks TCB extension {oid}")
        try:
            return der_small_uint(ext[oid])
        except X509Error as exc:
            raise _chain_err(f"{key_type.upper()} extension {oid}: {exc}") from None

    bl, tee, snp, ucode = spl(OID_BL_SPL), spl(OID_TEE_SPL), spl(OID_SNP_SPL), spl(OID_UCODE_SPL)
    fmc = spl(OID_FMC_SPL) if product == "Turin" else None
    pname: str | None = None
    if OID_PRODUCT_NAME in ext:
        try:
            pname = der_ia5string(ext[OID_PRODUCT_NAME])
        except X509Error as exc:
            raise _chain_err(f"productName extension: {exc}") from None
    hwid: bytes | None = None
    csp: str | None = None
    if key_type == "vcek":
        want = 8 if product == "Turin" else 64
        hwid = _decode_hwid(ext.get(OID_HWID), want)
        if hwid is None or len(hwid) != want:
            raise _chain_err(f"VCEK hwID extension missing or not {want} bytes")
    else:
        raw_csp = ext.get(OID_CSP_ID)
        if raw_csp is not None:
            try:
                csp = der_ia5string(raw_csp, max_len=256)
            except X509Error:
                csp = raw_csp.hex()
    return pname, bl, tee, snp, ucode, fmc, hwid, csp


def verify_snp_chain(
    leaf_der: bytes,
    leaf: x509.Certificate,
    supplied_cas: Iterable[tuple[bytes, x509.Certificate]] = (),
    *,
    now: datetime | None = None,
    trust_roots: SnpTrustRoots | None = None,
) -> SnpEndorsement:
    """Step 4-5 (certificate part): leaf VCEK/VLEK -> pinned ASK/ASVK -> pinned ARK.

    The product and the key type (VCEK vs VLEK) are those of the pinned intermediate whose
    subject names the leaf's issuer and whose key verifies the leaf's RSASSA-PSS signature.
    Every supplied CA certificate must be byte-identical to a pinned certificate of that
    product.  All three certificates must be valid at ``now``.
    """
    roots = trust_roots if trust_roots is not None else default_trust_roots()
    t_now = _ensure_utc(now)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise _chain_err("VCEK/VLEK key is not ECDSA P-384")

    found: tuple[SnpProductRoots, str, x509.Certificate] | None = None
    last_error = "no pinned AMD ASK/ASVK issued this certificate"
    for pr in roots.products.values():
        for role, inter in pr.intermediates():
            if inter.subject != leaf.issuer:
                continue
            try:
                verify_rsa_pss_sha384(inter, leaf_der, leaf)
            except X509Error as exc:
                last_error = f"{role.upper()} certificate does not verify under {pr.product} pinned key: {exc}"
                continue
            found = (pr, role, inter)
            break
        if found:
            break
    if found is None:
        raise _chain_err(last_error)
    pr, key_type, inter = found

    # Supplied ASK/ASVK/ARK: never a trust anchor; must equal the pinned ones.
    pinned = set(pr.all_der())
    for der, _cert in supplied_cas:
        if der not in pinned:
            raise _chain_err(f"supplied AMD CA certificate differs from the pinned {pr.product} roots")

    _check_validity(pr.ark, t_now, "ARK")
    _check_validity(inter, t_now, "ASK" if key_type == "vcek" else "ASVK")
    _check_validity(leaf, t_now, key_type.upper())

    pname, bl, tee, snp, ucode, fmc, hwid, csp = _decode_leaf_extensions(_ext_raw(leaf), key_type, pr.product)
    if pname is not None and pname.partition("-")[0] != pr.product:
        raise ClaimsError(
            f"productName {pname!r} does not match the {pr.product} chain", reason="attest.snp.product"
        )
    return SnpEndorsement(
        product=pr.product,
        product_name=pname,
        key_type=key_type,
        public_key=key,
        bootloader=bl,
        tee=tee,
        snp=snp,
        microcode=ucode,
        fmc=fmc,
        hwid=hwid,
        csp_id=csp,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        leaf_der=leaf_der,
    )


def select_and_verify(
    bundle: SnpCertBundle,
    key_type: str | None,
    *,
    now: datetime | None,
    trust_roots: SnpTrustRoots | None,
) -> SnpEndorsement:
    """Pick the leaf for ``key_type`` ("vcek"/"vlek"/None = any) from a bundle and verify it."""
    leaves = [(h, d, c) for h, d, c in bundle.leaves if key_type is None or h in (None, key_type)]
    if not leaves:
        raise _chain_err(f"no {(key_type or 'VCEK/VLEK').upper()} certificate supplied")
    first_error: Exception | None = None
    for _hint, der, cert in leaves[:4]:
        try:
            end = verify_snp_chain(der, cert, bundle.cas, now=now, trust_roots=trust_roots)
        except (CertificateChainError, ClaimsError) as exc:
            first_error = first_error or exc
            continue
        if key_type is not None and end.key_type != key_type:
            first_error = first_error or _chain_err(
                f"report is signed by the {key_type.upper()} but the certificate is a {end.key_type.upper()}"
            )
            continue
        return end
    assert first_error is not None
    raise first_error


def verify_snp_endorsement(
    certs: bytes,
    *,
    key_type: str | None = None,
    now: datetime | None = None,
    product: str | None = None,
    trust_roots: SnpTrustRoots | None = None,
) -> SnpEndorsement:
    """Verify a VCEK/VLEK (in any accepted ``certs`` form) to the pinned AMD roots.

    ``key_type`` restricts the leaf to "vcek" or "vlek"; ``product`` ("Milan", "Genoa-B1" ...)
    must match the chain and, when it names a stepping, the productName extension.
    """
    bundle = split_snp_certs(certs)
    end = select_and_verify(bundle, key_type, now=now, trust_roots=trust_roots)
    if product is not None:
        check_product(product, end)
    return end


def check_product(product: str, end: SnpEndorsement) -> None:
    base, full = normalize_product(product)
    if base != end.product:
        raise ClaimsError(f"expected product {base}, the chain is {end.product}", reason="attest.snp.product")
    if full is not None and end.product_name is not None and full != end.product_name:
        raise ClaimsError(
            f"expected product {full}, the certificate says {end.product_name}", reason="attest.snp.product"
        )


def load_leaf_der(der: bytes) -> tuple[bytes, x509.Certificate]:
    """Load a single VCEK/VLEK (DER or PEM, e.g. from KDS) or raise a chain error."""
    certs = _load_or_chain_err(der)
    if len(certs) != 1 or not isinstance(certs[0][1].public_key(), ec.EllipticCurvePublicKey):
        raise _chain_err("expected exactly one VCEK/VLEK certificate")
    return certs[0]
