"""Test helpers for the SEV-SNP verifier: paths to the real samples, and a SYNTHETIC AMD-like
hierarchy (ARK -> ASK/ASVK -> VCEK/VLEK, RSASSA-PSS SHA-384, P-384 leaves with the KDS
extensions) plus a report builder/signer, used where no real evidence exists (Genoa/Turin
reports, VLEK-signed reports, masked chip id, TCB/chip-id mismatches).  The synthetic roots are
passed to ``verify_snp(trust_roots=...)``; they are never pinned in the package.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from weightseal.attest._snp_certs import SnpProductRoots, SnpTrustRoots

DATA = Path(__file__).resolve().parents[1] / "data" / "attestation" / "snp"
GSG = DATA / "go-sev-guest"
VIRTEE = DATA / "virtee-sev"

# go-sev-guest sample: VCEK valid 2022-09-24T00:55:28Z .. 2029-09-24
NOW_GSG = datetime(2022, 9, 24, 1, 0, tzinfo=UTC)
# virtee sample: VCEK valid 2023-04-03 .. 2030-04-03
NOW_VIRTEE = datetime(2024, 6, 1, tzinfo=UTC)
NOW_TURIN = datetime(2025, 6, 1, tzinfo=UTC)


def read(p: Path) -> bytes:
    return p.read_bytes()


def gsg_report() -> bytes:
    return read(GSG / "attestation.bin")


def gsg_vcek() -> bytes:
    return read(GSG / "vcek.testcer")


def virtee_report_hex() -> bytes:
    return read(VIRTEE / "report_milan.hex")


def virtee_report() -> bytes:
    return bytes.fromhex(virtee_report_hex().decode())


def virtee_vcek() -> bytes:
    return read(VIRTEE / "vcek_milan.der")


def pem_certs(p: Path) -> list[bytes]:
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(p.read_bytes())]


# ---------------------------------------------------------------------------------------------
# Synthetic hierarchy

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2045, 1, 1, tzinfo=UTC)
NOW_SYNTH = datetime(2025, 1, 1, tzinfo=UTC)
AMD_OID = "1.3.6.1.4.1.3704.1."


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Synthetic Test Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _sign_cert(
    subject: str,
    pub: object,
    issuer: str,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool,
    exts: list[x509.ExtensionType] | None = None,
    not_before: datetime = T0,
    not_after: datetime = T1,
    serial: int = 1,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(pub)  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
    for e in exts or []:
        b = b.add_extension(e, critical=False)
    return b.sign(issuer_key, hashes.SHA384(), rsa_padding=PSS)


def der_int(v: int) -> bytes:
    body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return b"\x02" + bytes([len(body)]) + body


def ia5(s: str) -> bytes:
    return b"\x16" + bytes([len(s)]) + s.encode()


@dataclass
class SynthProduct:
    product: str
    ark_key: rsa.RSAPrivateKey
    ask_key: rsa.RSAPrivateKey
    asvk_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate

    def roots(self) -> SnpProductRoots:
        return SnpProductRoots(self.product, self.ark, self.ask, self.asvk)

    def leaf(
        self,
        key_type: str,
        leaf_key: ec.EllipticCurvePrivateKey,
        *,
        bl: int,
        tee: int,
        snp: int,
        ucode: int,
        fmc: int | None = None,
        hwid: bytes | None = None,
        product_name: str | None = None,
        not_before: datetime = T0,
        not_after: datetime = T1,
        omit: tuple[str, ...] = (),
    ) -> x509.Certificate:
        vals: dict[str, bytes] = {
            "1": der_int(1 if self.product == "Turin" else 0),
            "2": ia5(product_name if product_name is not None else f"{self.product}-B0"),
            "3.1": der_int(bl),
            "3.2": der_int(tee),
            "3.3": der_int(snp),
            "3.8": der_int(ucode),
        }
        if fmc is not None:
            vals["3.9"] = der_int(fmc)
        if key_type == "vcek":
            assert hwid is not None
            vals["4"] = hwid
        else:
            vals["5"] = ia5("synthetic-csp")
        exts: list[x509.ExtensionType] = [
            x509.UnrecognizedExtension(x509.ObjectIdentifier(AMD_OID + k), v)
            for k, v in vals.items()
            if k not in omit
        ]
        if key_type == "vcek":
            return _sign_cert("SEV-VCEK", leaf_key.public_key(), f"SEV-{self.product}", self.ask_key,
                              ca=False, exts=exts, not_before=not_before, not_after=not_after, serial=0x100)
        return _sign_cert("SEV-VLEK", leaf_key.public_key(), f"SEV-VLEK-{self.product}", self.asvk_key,
                          ca=False, exts=exts, not_before=not_before, not_after=not_after, serial=0x101)


@functools.cache
def synth_product(product: str) -> SynthProduct:
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    asvk_key = rsa.generate_private_key(65537, 2048)
    ark = _sign_cert(f"ARK-{product}", ark_key.public_key(), f"ARK-{product}", ark_key, ca=True)
    ask = _sign_cert(f"SEV-{product}", ask_key.public_key(), f"ARK-{product}", ark_key, ca=True)
    asvk = _sign_cert(f"SEV-VLEK-{product}", asvk_key.public_key(), f"ARK-{product}", ark_key, ca=True)
    return SynthProduct(product, ark_key, ask_key, asvk_key, ark, ask, asvk)


@functools.cache
def synth_roots() -> SnpTrustRoots:
    return SnpTrustRoots({p: synth_product(p).roots() for p in ("Milan", "Genoa", "Turin")})


@functools.cache
def leaf_key(tag: str = "default") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def tcb_u64(product: str, *, bl: int, tee: int, snp: int, ucode: int, fmc: int = 0) -> int:
    if product == "Turin":
        b = bytes([fmc, bl, tee, snp, 0, 0, 0, ucode])
    else:
        b = bytes([bl, tee, 0, 0, 0, 0, snp, ucode])
    return int.from_bytes(b, "little")


CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}


def build_report(
    *,
    version: int = 3,
    product: str = "Genoa",
    policy: int = 0x30000,
    vmpl: int = 0,
    signing_key: int = 0,
    mask_chip_id: bool = False,
    mask_chip_key: bool = False,
    author_key_en: bool = False,
    tcb: int = 0,
    current_tcb: int | None = None,
    chip_id: bytes = bytes(range(1, 65)),
    report_data: bytes = b"\x11" * 64,
    measurement: bytes = b"\x22" * 48,
    mit: tuple[int, int] = (3, 5),
    cpuid: tuple[int, int, int] | None = None,
) -> bytearray:
    r = bytearray(0x4A0)
    struct.pack_into("<IIQ", r, 0, version, 7, policy)
    r[0x10:0x20] = b"\xaa" * 16
    r[0x20:0x30] = b"\xbb" * 16
    struct.pack_into("<II", r, 0x30, vmpl, 1)
    struct.pack_into("<QQ", r, 0x38, tcb if current_tcb is None else current_tcb, 0x25)
    # KEY_INFO: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY.  MASK_CHIP_ID (a
    # host SNP_CONFIG switch) is not reported in KEY_INFO: it only zeroes CHIP_ID.
    struct.pack_into("<I", r, 0x48, (signing_key << 2) | (2 if mask_chip_key else 0) | (1 if author_key_en else 0))
    r[0x50:0x90] = report_data
    r[0x90:0xC0] = measurement
    r[0xC0:0xE0] = b"\x33" * 32
    r[0x140:0x160] = b"\x44" * 32
    r[0x160:0x180] = b"\xff" * 32
    struct.pack_into("<Q", r, 0x180, tcb)
    if version >= 3:
        r[0x188:0x18B] = bytes(cpuid or CPUID[product])
    r[0x1A0:0x1E0] = bytes(64) if mask_chip_id else chip_id
    struct.pack_into("<Q", r, 0x1E0, tcb)
    r[0x1E8:0x1EB] = bytes([9, 55, 1])
    r[0x1EC:0x1EF] = bytes([8, 54, 1])
    struct.pack_into("<Q", r, 0x1F0, tcb)
    if version >= 5:
        struct.pack_into("<QQ", r, 0x1F8, *mit)
    return r


def sign_report(r: bytearray, key: ec.EllipticCurvePrivateKey) -> bytes:
    der = key.sign(bytes(r[:0x2A0]), ec.ECDSA(hashes.SHA384()))
    rr, ss = decode_dss_signature(der)
    r[0x2A0:0x2E8] = rr.to_bytes(72, "little")
    r[0x2E8:0x330] = ss.to_bytes(72, "little")
    return bytes(r)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def expired_leaf_window() -> tuple[datetime, datetime]:
    return NOW_SYNTH - timedelta(days=400), NOW_SYNTH - timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Signed synthetic evidence (VCEK + report) for one product

CHIP = bytes(range(1, 65))
TURIN_CHIP = bytes(range(1, 9)) + bytes(56)


def synth_vcek(product: str, *, tag: str = "default", hwid: bytes | None = None, **kw: object) -> bytes:
    spl = dict(bl=3, tee=1, snp=20, ucode=210)
    if product == "Turin":
        spl.update(fmc=1)
    spl.update(kw)  # type: ignore[arg-type]
    h = hwid if hwid is not None else (TURIN_CHIP[:8] if product == "Turin" else CHIP)
    return der(synth_product(product).leaf("vcek", leaf_key(tag), hwid=h, **spl))  # type: ignore[arg-type]


def synth_tcb(product: str, **kw: int) -> int:
    spl = dict(bl=3, tee=1, snp=20, ucode=210, fmc=1 if product == "Turin" else 0)
    spl.update(kw)
    return tcb_u64(product, **spl)


def synth_report(product: str, *, tag: str = "default", **kw: object) -> bytes:
    kw.setdefault("tcb", synth_tcb(product))
    if product == "Turin":
        kw.setdefault("chip_id", TURIN_CHIP)
    r = build_report(product=product, **kw)  # type: ignore[arg-type]
    return sign_report(r, leaf_key(tag))


class FakeFetcher:
    """A KDS fetcher over fixed responses that records the URLs it was asked for; an unknown
    URL fails like an unreachable server."""

    def __init__(self, responses: dict[str, bytes]) -> None:
        self.responses = responses
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.responses:
            raise OSError("404")
        return self.responses[url]
