"""TDX quote layouts and PCK chain shapes that real evidence uses but the shared samples do not
cover: quote v5 with a TDX 1.0 body (type 2), PCK chains issued by the "Processor" CA (whose
PCK certificates carry no platform instance id / configuration), partial configuration
sequences, NUL-terminated PEM, and every TD report body field at its spec offset.

Everything here is built from scratch with test keys under a test root that replaces the pinned
Intel SGX Root CA (monkeypatched); no fetched evidence is used.
"""

from __future__ import annotations

import hashlib
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
from der_build import seq as _seq
from der_build import tlv as _tlv
from weightseal.attest import _tdx_pki
from weightseal.attest._errors import AttestationError
from weightseal.attest._tdx import parse_tdx_quote, verify_tdx
from weightseal.attest._tdx_der import parse_sgx_extension

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SGX = "1.2.840.113741.1.13.1"


# --------------------------------------------------------------------------- DER building


def _int(v: int, tag: int = 0x02) -> bytes:
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")  # room for the sign bit
    return _tlv(tag, b)


def _pair(sub: str, value: bytes) -> bytes:
    return _seq(_oid(f"{SGX}.{sub}"), value)


def sgx_extension(
    *,
    comps: tuple[int, ...] = (3, 3, 2, 2, 4, 1, 0, 5) + (0,) * 8,
    pcesvn: int = 13,
    fmspc: bytes = bytes.fromhex("90c06f000000"),
    sgx_type: int | None = 1,
    instance_id: bytes | None = None,
    config: dict[int, bool] | None = None,
) -> bytes:
    tcb = [_pair(f"2.{i + 1}", _int(c)) for i, c in enumerate(comps)]
    tcb.append(_pair("2.17", _int(pcesvn)))
    tcb.append(_pair("2.18", _tlv(0x04, bytes(comps))))
    items = [
        _pair("1", _tlv(0x04, bytes(range(16)))),
        _pair("2", _seq(*tcb)),
        _pair("3", _tlv(0x04, b"\x00\x00")),
        _pair("4", _tlv(0x04, fmspc)),
    ]
    if sgx_type is not None:
        items.append(_pair("5", _int(sgx_type, tag=0x0A)))
    if instance_id is not None:
        items.append(_pair("6", _tlv(0x04, instance_id)))
    if config is not None:
        items.append(
            _pair(
                "7",
                _seq(
                    *(
                        _pair(f"7.{k}", _tlv(0x01, b"\xff" if v else b"\x00"))
                        for k, v in config.items()
                    )
                ),
            )
        )
    return _seq(*items)


# --------------------------------------------------------------------------- test PKI


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    sgx_ext: bytes | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(
            x509.BasicConstraints(
                ca=ca, path_length=(None if issuer is None else 0) if ca else None
            ),
            critical=True,
        )
    )
    if sgx_ext is not None:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX), sgx_ext), critical=False
        )
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    root: x509.Certificate
    ca: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.leaf, self.ca, self.root)
        )


_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]


def make_pki(ca_cn: str = "Intel SGX PCK Processor CA", sgx_ext: bytes | None = None) -> Pki:
    rk, ck, lk = _KEYS[0], _KEYS[1], _KEYS[2]
    root = _cert("Intel SGX Root CA", rk, None, rk, ca=True)
    ca = _cert(ca_cn, ck, root, rk, ca=True)
    leaf = _cert(
        "Intel SGX PCK Certificate", lk, ca, ck, ca=False,
        sgx_ext=sgx_ext if sgx_ext is not None else sgx_extension(),
    )  # fmt: skip
    return Pki(root, ca, leaf, lk)


@pytest.fixture
def test_root(monkeypatch: pytest.MonkeyPatch) -> Callable[[Pki], None]:
    def install(pki: Pki) -> None:
        monkeypatch.setattr(_tdx_pki, "intel_sgx_root_ca", lambda: pki.root)

    return install


# --------------------------------------------------------------------------- quote building

# TD report body fields in order (TDX 1.0), then the TDX 1.5 additions.
TD10_FIELDS = [
    ("tee_tcb_svn", 16), ("mr_seam", 48), ("mr_signer_seam", 48), ("seam_attributes", 8),
    ("td_attributes", 8), ("xfam", 8), ("mr_td", 48), ("mr_config_id", 48), ("mr_owner", 48),
    ("mr_owner_config", 48), ("rtmr0", 48), ("rtmr1", 48), ("rtmr2", 48), ("rtmr3", 48),
    ("report_data", 64),
]  # fmt: skip
TD15_FIELDS = [*TD10_FIELDS, ("tee_tcb_svn_2", 16), ("mr_service_td", 48)]


def body_fields(td15: bool) -> dict[str, bytes]:
    """Each field filled with a distinct byte, so an offset error shows up as a wrong value."""
    fields = TD15_FIELDS if td15 else TD10_FIELDS
    return {name: bytes([0x10 + i]) * size for i, (name, size) in enumerate(fields)}


@dataclass
class QuoteSpec:
    version: int = 4
    body_type: int = 2
    body: dict[str, bytes] = field(default_factory=lambda: body_fields(False))
    auth: bytes = bytes(range(32))
    qe_rd_tail: bytes = bytes(32)
    pem_suffix: bytes = b""
    trailing: bytes = b""


def make_quote(pki: Pki, spec: QuoteSpec) -> bytes:
    att = _KEYS[3]
    att_pub = att.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    header = (
        struct.pack("<HHIHH", spec.version, 2, 0x81, 0, 0)
        + bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
        + bytes(20)
    )
    body = b"".join(spec.body.values())
    desc = struct.pack("<HI", spec.body_type, len(body)) if spec.version == 5 else b""
    signed = header + desc + body

    def raw_sig(key: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    qe = bytearray(384)
    qe[0:16] = b"\x01" * 16
    qe[128:160] = b"\x42" * 32  # mrsigner
    qe[258:260] = (7).to_bytes(2, "little")  # isvsvn
    qe[320:384] = hashlib.sha256(att_pub + spec.auth).digest() + spec.qe_rd_tail
    pem = pki.pem() + spec.pem_suffix
    cert_body = (
        bytes(qe)
        + raw_sig(pki.leaf_key, bytes(qe))
        + struct.pack("<H", len(spec.auth))
        + spec.auth
        + struct.pack("<HI", 5, len(pem))
        + pem
    )
    sig_data = raw_sig(att, signed) + att_pub + struct.pack("<HI", 6, len(cert_body)) + cert_body
    return signed + struct.pack("<I", len(sig_data)) + sig_data + spec.trailing


def _reason(quote: bytes) -> str:
    with pytest.raises(AttestationError) as ei:
        verify_tdx(quote, now=NOW)
    return str(ei.value.reason)


# --------------------------------------------------------------------------- tests


def test_pinned_root_is_required(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki()
    q = make_quote(pki, QuoteSpec())
    assert _reason(q) == "attest.tdx.chain"  # the real pinned root does not know the test root
    test_root(pki)
    assert verify_tdx(q, now=NOW).quote_version == 4


@pytest.mark.parametrize(
    ("version", "body_type", "td15"), [(4, 2, False), (5, 2, False), (5, 3, True)]
)
def test_body_fields_at_spec_offsets(
    test_root: Callable[[Pki], None], version: int, body_type: int, td15: bool
) -> None:
    pki = make_pki()
    test_root(pki)
    fields = body_fields(td15)
    c = verify_tdx(
        make_quote(pki, QuoteSpec(version=version, body_type=body_type, body=fields)), now=NOW
    )
    assert (c.quote_version, c.body_type) == (version, body_type)
    got = {
        "tee_tcb_svn": c.tee_tcb_svn, "mr_seam": c.mr_seam, "mr_signer_seam": c.mr_signer_seam,
        "seam_attributes": c.seam_attributes, "td_attributes": c.td_attributes, "xfam": c.xfam,
        "mr_td": c.mr_td, "mr_config_id": c.mr_config_id, "mr_owner": c.mr_owner,
        "mr_owner_config": c.mr_owner_config, "rtmr0": c.rtmrs[0], "rtmr1": c.rtmrs[1],
        "rtmr2": c.rtmrs[2], "rtmr3": c.rtmrs[3], "report_data": c.report_data,
    }  # fmt: skip
    if td15:
        assert c.tee_tcb_svn_2 is not None and c.mr_service_td is not None
        got["tee_tcb_svn_2"] = c.tee_tcb_svn_2
        got["mr_service_td"] = c.mr_service_td
    else:
        assert c.tee_tcb_svn_2 is None and c.mr_service_td is None
    assert got == fields
    assert c.debug is False  # td_attributes byte 0 is 0x14: bit 0 clear
    assert c.fmspc.hex() == "90c06f000000" and c.pck_pcesvn == 13


def test_v5_body_type_must_match_size(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki()
    test_root(pki)
    # a TDX 1.5 body announced as type 2, a TDX 1.0 body announced as type 3, and body types
    # that the quote format does not define for TDX (1 = SGX enclave report, 4 = none)
    for body_type, td15 in ((2, True), (3, False), (1, False), (4, True), (4, False)):
        q = make_quote(pki, QuoteSpec(version=5, body_type=body_type, body=body_fields(td15)))
        assert _reason(q) == "attest.tdx.parse", (body_type, td15)
    # a v4 quote has no descriptor: a TDX 1.5 body in it cannot be parsed
    assert (
        _reason(make_quote(pki, QuoteSpec(version=4, body=body_fields(True)))) == "attest.tdx.parse"
    )


def test_processor_ca_chain_without_platform_fields(test_root: Callable[[Pki], None]) -> None:
    ext = sgx_extension(instance_id=None, config=None)
    parsed = parse_sgx_extension(ext)
    assert parsed.platform_instance_id is None and parsed.smt_enabled is None
    pki = make_pki("Intel SGX PCK Processor CA", ext)
    test_root(pki)
    c = verify_tdx(make_quote(pki, QuoteSpec()), now=NOW)
    assert c.pck_ppid == bytes(range(16)) and c.pck_cpusvn == bytes(
        (3, 3, 2, 2, 4, 1, 0, 5) + (0,) * 8
    )


@pytest.mark.parametrize(
    "config",
    [{1: True, 2: False, 3: True}, {1: False}, {3: True}, {}],
    ids=["full", "dynamic-only", "smt-only", "empty"],
)
def test_platform_ca_chain_with_optional_fields(
    test_root: Callable[[Pki], None], config: dict[int, bool]
) -> None:
    ext = sgx_extension(instance_id=b"\xaa" * 16, config=config)
    parsed = parse_sgx_extension(ext)
    assert parsed.platform_instance_id == b"\xaa" * 16
    assert (parsed.dynamic_platform, parsed.cached_keys, parsed.smt_enabled) == (
        config.get(1),
        config.get(2),
        config.get(3),
    )
    pki = make_pki("Intel SGX PCK Platform CA", ext)
    test_root(pki)
    assert verify_tdx(make_quote(pki, QuoteSpec()), now=NOW).fmspc.hex() == "90c06f000000"


def test_older_pck_without_sgx_type(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki(sgx_ext=sgx_extension(sgx_type=None))
    test_root(pki)
    assert verify_tdx(make_quote(pki, QuoteSpec()), now=NOW).pck_pcesvn == 13


def test_unknown_intermediate_role_rejected(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki("Intel SGX PCK Other CA")
    test_root(pki)
    assert _reason(make_quote(pki, QuoteSpec())) == "attest.tdx.chain"


def test_nul_terminated_pem_and_trailing_padding(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki()
    test_root(pki)
    q = make_quote(pki, QuoteSpec(pem_suffix=b"\x00", trailing=bytes(70)))
    parsed = parse_tdx_quote(q)
    assert parsed.length == len(q) - 70 and parsed.pck_chain_pem.endswith(b"\x00")
    assert verify_tdx(q, now=NOW).quote_version == 4
    # text after the PEM blocks is not whitespace/NUL: refused
    bad = make_quote(pki, QuoteSpec(pem_suffix=b"\x00junk"))
    assert _reason(bad) == "attest.tdx.chain"


def test_qe_report_data_upper_half_must_be_zero(test_root: Callable[[Pki], None]) -> None:
    pki = make_pki()
    test_root(pki)
    q = make_quote(pki, QuoteSpec(qe_rd_tail=b"\x00" * 31 + b"\x01"))
    assert _reason(q) == "attest.tdx.qe_binding"
    # QE auth data of another length is bound as well (and parsed by its length field)
    assert verify_tdx(make_quote(pki, QuoteSpec(auth=b"")), now=NOW).quote_version == 4
    assert verify_tdx(make_quote(pki, QuoteSpec(auth=b"\x07" * 100)), now=NOW).quote_version == 4
