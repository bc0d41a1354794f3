"""NVIDIA GPU evidence shapes that real devices produce but the shared samples do not cover:
a Blackwell attestation-key certificate whose DICE TcbInfo (2.23.133.5.4.1.1) omits optional
fields (so FWIDLIST [6] is not the 7th element) and lists more than one FWID, a Hopper-layout
FWID extension, NVML zero padding after the signature, unknown opaque-data types, and SPDM
versions other than 1.1 (refused: their signed-data layout differs).

Everything is built from scratch with test keys under a test root that replaces the pinned
NVIDIA Device Identity CA (monkeypatched); no fetched evidence is used.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from der_build import oid as _oid
from der_build import tlv as _tlv
from weightseal.attest import _nvgpu
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu import parse_gpu_report, verify_gpu

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NONCE = bytes(range(32))
FWID = bytes(range(0x80, 0x80 + 48))
SHA384_OID = "2.16.840.1.101.3.4.2.2"


def _fwid(digest: bytes) -> bytes:
    return _tlv(0x30, _oid(SHA384_OID) + _tlv(0x04, digest))


def blackwell_tcbinfo(fwids: list[bytes]) -> bytes:
    """DICE TcbInfo with only [0] vendor, [1] model, [6] fwids, [7] flags present."""
    return _tlv(
        0x30,
        _tlv(0x80, b"NVIDIA")
        + _tlv(0x81, b"GB100 A01 GSP")
        + _tlv(0xA6, b"".join(_fwid(f) for f in fwids))
        + _tlv(0x87, b"\x00\x80\x00\x00\x01"),
    )


def hopper_fwid_ext(digest: bytes) -> bytes:
    """NVIDIA's Hopper layout: SEQUENCE { INTEGER, SEQUENCE {...}, FWID }; FWID last."""
    return _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x30, _oid("1.2.3")) + _fwid(digest))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_KEYS = [ec.generate_private_key(ec.SECP384R1()) for _ in range(3)]
_OTHER_AK = ec.generate_private_key(ec.SECP384R1())


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    ext: tuple[str, bytes] | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=30))
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=not ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )  # fmt: skip
    if ext is not None:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(ext[0]), ext[1]), critical=False
        )
    return b.sign(issuer_key, hashes.SHA384())


@dataclass
class Device:
    root: x509.Certificate
    pem: bytes
    ak: ec.EllipticCurvePrivateKey


def make_device(
    chip: str, ext: tuple[str, bytes], ak: ec.EllipticCurvePrivateKey | None = None
) -> Device:
    rk, dk, default_ak = _KEYS
    ak = ak or default_ak
    root = _cert("NVIDIA Device Identity CA", rk, None, rk, ca=True)
    dev = _cert(f"{chip} A01 GSP BROM", dk, root, rk, ca=True)
    leaf = _cert(f"{chip} A01 GSP FMC LF", ak, dev, dk, ca=False, ext=ext)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, dev, root))
    return Device(root, pem, ak)


@pytest.fixture
def test_root(monkeypatch: pytest.MonkeyPatch) -> Callable[[Device], None]:
    def install(d: Device) -> None:
        monkeypatch.setattr(_nvgpu, "device_root", lambda: d.root)

    return install


@dataclass
class ReportSpec:
    version: int = 0x11
    opaque: list[tuple[int, bytes]] = field(
        default_factory=lambda: [
            (6, bytes.fromhex("0088009700000000")),
            (3, b"575.32\x00"),
            (20, FWID),
            (11, b"\x55"),
        ]
    )
    padding: bytes = b""


def make_report(ak: ec.EllipticCurvePrivateKey, spec: ReportSpec) -> bytes:
    req = bytes([spec.version, 0xE0, 0x01, 0xFF]) + NONCE + b"\x00"
    blocks = b"".join(
        struct.pack("<BBH", i, 1, 51) + struct.pack("<BH", 1, 48) + bytes([i]) * 48
        for i in range(1, 5)
    )
    opaque = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in spec.opaque)
    resp = (
        bytes([spec.version, 0x60, 0x00, 0x00, 4])
        + len(blocks).to_bytes(3, "little")
        + blocks
        + b"\x5a" * 32
        + struct.pack("<H", len(opaque))
        + opaque
    )
    r, s = decode_dss_signature(ak.sign(req + resp, ec.ECDSA(hashes.SHA384())))
    return req + resp + r.to_bytes(48, "big") + s.to_bytes(48, "big") + spec.padding


def _reason(report: bytes, certs: bytes) -> str:
    with pytest.raises(AttestationError) as ei:
        verify_gpu(report, certs, now=NOW, expected_nonce=NONCE)
    return str(ei.value.reason)


def test_pinned_root_is_required(test_root: Callable[[Device], None]) -> None:
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    rep = make_report(d.ak, ReportSpec())
    assert _reason(rep, d.pem) == "attest.gpu.chain"
    test_root(d)
    assert verify_gpu(rep, d.pem, now=NOW, expected_nonce=NONCE).architecture == "blackwell"


def test_blackwell_tcbinfo_fwid_is_first_of_fwidlist(test_root: Callable[[Device], None]) -> None:
    other = b"\x00" * 48
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID, other])))
    test_root(d)
    c = verify_gpu(make_report(d.ak, ReportSpec()), d.pem, now=NOW, expected_nonce=NONCE)
    assert (c.architecture, c.fwid, c.hwmodel) == ("blackwell", FWID, "GB100 A01 GSP BROM")
    assert (c.driver_version, c.vbios_version) == ("575.32", "97.00.88.00.00")
    assert c.measurements == {i: bytes([i]) * 48 for i in range(1, 5)}
    # the report's FWID must be the certificate's first FWID, not any other list entry
    spec = ReportSpec()
    spec.opaque[2] = (20, other)
    assert _reason(make_report(d.ak, spec), d.pem) == "attest.gpu.fwid"


def test_blackwell_without_report_fwid_uses_certificate_fwid(
    test_root: Callable[[Device], None],
) -> None:
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    test_root(d)
    spec = ReportSpec()
    del spec.opaque[2]
    assert verify_gpu(make_report(d.ak, spec), d.pem, now=NOW).fwid == FWID


def test_hopper_layout_fwid(test_root: Callable[[Device], None]) -> None:
    d = make_device("GH100", ("2.23.133.5.4.1", hopper_fwid_ext(FWID)))
    test_root(d)
    c = verify_gpu(make_report(d.ak, ReportSpec()), d.pem, now=NOW, expected_nonce=NONCE)
    assert (c.architecture, c.fwid) == ("hopper", FWID)


def test_nvml_padding_and_unknown_opaque_types(test_root: Callable[[Device], None]) -> None:
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    test_root(d)
    spec = ReportSpec(padding=bytes(0x2000 - 1000))
    spec.opaque.append((0x7F, b"\x01\x02"))
    rep = make_report(d.ak, spec)
    assert parse_gpu_report(rep).trailing == 0x2000 - 1000
    c = verify_gpu(rep, d.pem, now=NOW, expected_nonce=NONCE)
    assert c.opaque["type_127"] == "0102"
    # a non-zero byte in the padding is refused
    assert _reason(rep[:-1] + b"\x01", d.pem) == "attest.gpu.parse"
    # an opaque TLV whose length runs past the opaque data is refused
    spec2 = ReportSpec()
    spec2.opaque.append((0x7F, b""))
    bad = bytearray(make_report(d.ak, spec2))
    tail = len(bad) - 96 - 4  # header of the appended TLV
    bad[tail + 2 : tail + 4] = (5).to_bytes(2, "little")
    assert _reason(bytes(bad), d.pem) == "attest.gpu.parse"


@pytest.mark.parametrize("version", [0x10, 0x12, 0x13])
def test_other_spdm_versions_refused(test_root: Callable[[Device], None], version: int) -> None:
    # SPDM 1.2+ signs a prefixed transcript hash (and 1.3 adds RequesterContext); parsing such a
    # report with the 1.1 layout would check the wrong bytes, so it is refused outright.
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    test_root(d)
    assert _reason(make_report(d.ak, ReportSpec(version=version)), d.pem) == "attest.gpu.parse"


def test_report_signature_is_checked_before_fwid(test_root: Callable[[Device], None]) -> None:
    # NVIDIA attestation-sdk's "invalid signature" scenario: a report that does not verify
    # with the supplied chain's AK, whose FWID also differs from that chain's.  The report is
    # authenticated first (as NVIDIA's SDK and trustee do), so this is a signature failure.
    d = make_device("GH100", ("2.23.133.5.4.1", hopper_fwid_ext(b"\x33" * 48)))
    test_root(d)
    foreign = make_report(_OTHER_AK, ReportSpec())  # FWID in the report: FWID != 0x33..
    assert _reason(foreign, d.pem) == "attest.gpu.signature"
    own = bytearray(make_report(d.ak, ReportSpec()))
    own[-1] ^= 1  # corrupt the signature of a report that carries a foreign FWID
    assert _reason(bytes(own), d.pem) == "attest.gpu.signature"
    # correctly signed by this AK but carrying another FWID: an FWID failure
    assert _reason(make_report(d.ak, ReportSpec()), d.pem) == "attest.gpu.fwid"


def test_opaque_data_version(test_root: Callable[[Device], None]) -> None:
    d = make_device("GB100", ("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    test_root(d)
    for raw, ok in ((b"\x00\x00", True), (b"\x01\x00", True), (b"\x02\x00", False), (b"", False)):
        spec = ReportSpec()
        spec.opaque.append((34, raw))
        rep = make_report(d.ak, spec)
        if ok:
            assert verify_gpu(rep, d.pem, now=NOW).opaque["opaque_data_version"] == raw.hex()
        else:
            assert _reason(rep, d.pem) == "attest.gpu.parse", raw
