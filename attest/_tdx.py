"""Intel TDX quote verifier (ECDSA quotes, versions 4 and 5), offline, to the pinned Intel SGX
Root CA.

Layout (Intel "TDX DCAP Quote Generation Library and Quote Verification Library", Quote v4
and v5 appendices; all integers little-endian):

  Header (48 bytes)
    0x00 version u16 (4 | 5)            0x02 attestation key type u16 (2 = ECDSA-256-with-P-256)
    0x04 TEE type u32 (0x81 = TDX)      0x08 QE SVN u16      0x0A PCE SVN u16
    0x0C QE vendor id [16]              0x1C user data [20]
  v4: TD report body (TDX 1.0, 584 bytes) at 0x30.
  v5: body type u16 (2 = TDX 1.0 / 584, 3 = TDX 1.5 / 648), body size u32, body at 0x36.
  TD report body (offsets within the body)
    0x000 TEE_TCB_SVN[16]  0x010 MRSEAM[48]  0x040 MRSIGNERSEAM[48]  0x070 SEAMATTRIBUTES[8]
    0x078 TDATTRIBUTES[8]  0x080 XFAM[8]     0x088 MRTD[48]          0x0B8 MRCONFIGID[48]
    0x0E8 MROWNER[48]      0x118 MROWNERCONFIG[48]  0x148 RTMR0..3 [4x48]  0x208 REPORTDATA[64]
    TDX 1.5 only: 0x248 TEE_TCB_SVN2[16]  0x258 MRSERVICETD[48]
  Signed region: the header and the body (v5: including the body descriptor).
  Signature data length u32, then signature data (its length must match exactly):
    quote signature [64] (r||s, big-endian), attestation public key [64] (X||Y),
    certification data: type u16 (6 = QE report certification data), size u32, then
      QE report [384], QE report signature [64], QE auth data size u16 + bytes,
      certification data: type u16 (5 = PCK certificate chain, PEM), size u32, PEM bytes.
  Bytes after the quote are ignored (some producers pad).

Verification (numbered steps, as in the QVL's 4.1.2.4.x flow):
  1. Parse the header, body and signature data with bounds checks.
  2. PCK chain: PEM -> PCK leaf, PCK Platform/Processor CA, root; the root is byte-equal to
     the pinned Intel SGX Root CA; each ECDSA P-256/SHA-256 signature verifies; every
     certificate is valid at ``now``; the SGX extension (FMSPC, TCB, ...) is parsed.
  3. QE report signature: ECDSA P-256 by the PCK leaf key over the 384-byte QE report.
  4. QE report data: REPORTDATA[0:32] == SHA-256(attestation key || QE auth data), rest zero.
  5. Quote signature: ECDSA P-256 by the attestation key over the signed region.
  6. Optional binding: REPORTDATA == expected_report_data.
  7. Optional collateral (see ``_tdx_collateral``): TCB Info, QE Identity, CRLs -> TCB status.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ._binding import check_report_data
from ._claims import Evidence, Platform, TdxClaims
from ._errors import (
    AttestationError,
    CertificateChainError,
    CollateralError,
    EvidenceParseError,
    SignatureError,
    UnsupportedEvidenceError,
    WeightsealError,
)
from ._tdx_collateral import (
    IntelPcsFetcher,
    TdxCollateral,
    TdxCollateralDir,
    TdxTcbEvaluation,
    check_tdx_module,
    evaluate_tdx_tcb,
    qe_identity_status,
    verify_tdx_collateral,
)
from ._tdx_der import DerError, PckSgxExtension, parse_sgx_extension
from ._tdx_pki import common_name, p256_from_raw, parse_pem_chain, verify_chain, verify_raw_p256

__all__ = [
    "TdxQuoteHeader",
    "TdReportBody",
    "QeReport",
    "TdxQuote",
    "parse_tdx_quote",
    "verify_tdx",
    "verify_tdx_evidence",
    "TDX_REASONS",
]

R_PARSE = "attest.tdx.parse"
R_CHAIN = "attest.tdx.chain"
R_QE_REPORT = "attest.tdx.qe_report"
R_QE_BINDING = "attest.tdx.qe_binding"
R_SIGNATURE = "attest.tdx.signature"
R_BINDING = "attest.tdx.binding"
R_EXPIRED = "attest.tdx.expired"

TDX_REASONS = (
    R_PARSE,
    R_CHAIN,
    R_QE_REPORT,
    R_QE_BINDING,
    R_SIGNATURE,
    R_BINDING,
    R_EXPIRED,
    "attest.tdx.collateral",
    "attest.tdx.collateral_expired",
    "attest.tdx.tcb_status",
    "attest.tdx.revoked",
)

HEADER_LEN = 48
QUOTE_V4 = 4
QUOTE_V5 = 5
ATT_KEY_ECDSA_P256 = 2
TEE_TYPE_TDX = 0x81
BODY_TD10 = 2
BODY_TD15 = 3
TD10_BODY_LEN = 584
TD15_BODY_LEN = 648
QE_REPORT_LEN = 384
CERT_QE_REPORT = 6
CERT_PCK_CHAIN = 5
MAX_QUOTE_INPUT = 1024 * 1024
MAX_PCK_CHAIN = 64 * 1024
_PCK_CA_NAMES = ("Intel SGX PCK Platform CA", "Intel SGX PCK Processor CA")


def _perr(msg: str) -> EvidenceParseError:
    return EvidenceParseError(msg, reason=R_PARSE)


@dataclass(frozen=True)
class TdxQuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes  # 16
    user_data: bytes  # 20


@dataclass(frozen=True)
class TdReportBody:
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None


@dataclass(frozen=True)
class QeReport:
    """SGX REPORT body of the quoting enclave (384 bytes)."""

    raw: bytes
    cpusvn: bytes  # 16 @0
    miscselect: int  # u32 @16
    attributes: bytes  # 16 @48
    mrenclave: bytes  # 32 @64
    mrsigner: bytes  # 32 @128
    isvprodid: int  # u16 @256
    isvsvn: int  # u16 @258
    report_data: bytes  # 64 @320


@dataclass(frozen=True)
class TdxQuote:
    header: TdxQuoteHeader
    body_type: int
    body: TdReportBody
    signed_region: bytes
    signature: bytes  # 64, r||s
    attestation_key: bytes  # 64, X||Y
    qe_report: QeReport
    qe_report_signature: bytes  # 64
    qe_auth_data: bytes
    pck_chain_pem: bytes
    length: int  # bytes of the input the quote occupies (trailing bytes excluded)


class _Reader:
    """Bounds-checked cursor over the quote bytes."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _perr(f"quote truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        v: int = struct.unpack("<H", self.take(2, what))[0]
        return v

    def u32(self, what: str) -> int:
        v: int = struct.unpack("<I", self.take(4, what))[0]
        return v


def _parse_body(raw: bytes, body_type: int) -> TdReportBody:
    r = _Reader(raw)
    tee_tcb_svn = r.take(16, "TEE_TCB_SVN")
    mr_seam = r.take(48, "MRSEAM")
    mr_signer_seam = r.take(48, "MRSIGNERSEAM")
    seam_attributes = r.take(8, "SEAMATTRIBUTES")
    td_attributes = r.take(8, "TDATTRIBUTES")
    xfam = r.take(8, "XFAM")
    mr_td = r.take(48, "MRTD")
    mr_config_id = r.take(48, "MRCONFIGID")
    mr_owner = r.take(48, "MROWNER")
    mr_owner_config = r.take(48, "MROWNERCONFIG")
    rtmrs = (r.take(48, "RTMR0"), r.take(48, "RTMR1"), r.take(48, "RTMR2"), r.take(48, "RTMR3"))
    report_data = r.take(64, "REPORTDATA")
    svn2 = service = None
    if body_type == BODY_TD15:
        svn2 = r.take(16, "TEE_TCB_SVN2")
        service = r.take(48, "MRSERVICETD")
    if r.pos != len(raw):
        raise _perr("TD report body length mismatch")
    return TdReportBody(
        tee_tcb_svn, mr_seam, mr_signer_seam, seam_attributes, td_attributes, xfam, mr_td,
        mr_config_id, mr_owner, mr_owner_config, rtmrs, report_data, svn2, service,
    )  # fmt: skip


def _parse_qe_report(raw: bytes) -> QeReport:
    return QeReport(
        raw=raw,
        cpusvn=raw[0:16],
        miscselect=int.from_bytes(raw[16:20], "little"),
        attributes=raw[48:64],
        mrenclave=raw[64:96],
        mrsigner=raw[128:160],
        isvprodid=int.from_bytes(raw[256:258], "little"),
        isvsvn=int.from_bytes(raw[258:260], "little"),
        report_data=raw[320:384],
    )


def parse_tdx_quote(data: bytes) -> TdxQuote:
    """Step 1: parse a TDX ECDSA quote (v4 or v5).  Structure only, nothing is verified."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _perr("quote must be bytes")
    data = bytes(data)
    if len(data) > MAX_QUOTE_INPUT:
        raise _perr("quote too large")
    r = _Reader(data)
    # 1a. Header
    version = r.u16("header")
    att_key_type = r.u16("header")
    tee_type = r.u32("header")
    qe_svn = r.u16("header")
    pce_svn = r.u16("header")
    qe_vendor_id = r.take(16, "header")
    user_data = r.take(20, "header")
    if version not in (QUOTE_V4, QUOTE_V5):
        raise _perr(f"quote format not supported (version {version})")
    if att_key_type != ATT_KEY_ECDSA_P256:
        raise _perr(
            f"attestation key type {att_key_type} not supported (need ECDSA-256-with-P-256)"
        )
    if tee_type != TEE_TYPE_TDX:
        raise _perr(f"TEE type {tee_type:#x} is not TDX")
    header = TdxQuoteHeader(
        version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data
    )
    # 1b. Body (v5: descriptor first)
    if version == QUOTE_V4:
        body_type, body_len = BODY_TD10, TD10_BODY_LEN
    else:
        body_type = r.u16("body descriptor")
        body_len = r.u32("body descriptor")
        expected = {BODY_TD10: TD10_BODY_LEN, BODY_TD15: TD15_BODY_LEN}.get(body_type)
        if expected is None:
            raise _perr(f"quote body type {body_type} not supported")
        if body_len != expected:
            raise _perr(f"body size {body_len} does not match body type {body_type}")
    body = _parse_body(r.take(body_len, "TD report body"), body_type)
    signed_region = data[: r.pos]
    # 1c. Signature data; its length must equal what its parts add up to.
    sig_len = r.u32("signature data length")
    if sig_len > r.end - r.pos:
        raise _perr("signature data length runs past the end of the quote")
    end = r.pos + sig_len
    s = _Reader(data, r.pos, end)
    signature = s.take(64, "quote signature")
    att_key = s.take(64, "attestation key")
    cert_type = s.u16("certification data type")
    cert_size = s.u32("certification data size")
    if cert_type != CERT_QE_REPORT:
        raise _perr(f"certification data type {cert_type} not supported (need 6, QE report)")
    if cert_size != sig_len - 134:
        raise _perr(
            f"size of certification data is {cert_size:#x}, expected {max(sig_len - 134, 0):#x}"
        )
    c = _Reader(data, s.pos, s.pos + cert_size)
    qe_report = _parse_qe_report(c.take(QE_REPORT_LEN, "QE report"))
    qe_report_sig = c.take(64, "QE report signature")
    auth_len = c.u16("QE auth data size")
    auth = c.take(auth_len, "QE auth data")
    inner_type = c.u16("PCK certification data type")
    inner_size = c.u32("PCK certification data size")
    if inner_type != CERT_PCK_CHAIN:
        raise _perr(f"inner certification data type {inner_type} not supported (need 5, PCK chain)")
    if inner_size != c.end - c.pos:
        raise _perr(
            f"PCK chain size {inner_size:#x} does not match its container ({c.end - c.pos:#x})"
        )
    if inner_size > MAX_PCK_CHAIN:
        raise _perr("PCK chain too large")
    pem = c.take(inner_size, "PCK chain")
    return TdxQuote(
        header=header,
        body_type=body_type,
        body=body,
        signed_region=signed_region,
        signature=signature,
        attestation_key=att_key,
        qe_report=qe_report,
        qe_report_signature=qe_report_sig,
        qe_auth_data=auth,
        pck_chain_pem=pem,
        length=end,
    )


def _pck_extension(leaf: x509.Certificate) -> PckSgxExtension:
    try:
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.840.113741.1.13.1"))
        value = ext.value
        if not isinstance(value, x509.UnrecognizedExtension):
            raise CertificateChainError("SGX extension has an unexpected form", reason=R_CHAIN)
        return parse_sgx_extension(value.value)
    except x509.ExtensionNotFound:
        raise CertificateChainError(
            "PCK certificate has no SGX extension", reason=R_CHAIN
        ) from None
    except CertificateChainError:
        raise
    except (DerError, ValueError, TypeError):
        raise CertificateChainError(
            "PCK certificate SGX extension is malformed", reason=R_CHAIN
        ) from None


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise AttestationError("now must be a datetime", reason=R_PARSE)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _verify(
    quote_bytes: bytes,
    now: datetime | None,
    expected_report_data: bytes | None,
    collateral: TdxCollateral | None,
    fetcher: IntelPcsFetcher | TdxCollateralDir | None,
) -> TdxClaims:
    at = _utc(now)

    # 1. Parse.
    q = parse_tdx_quote(quote_bytes)
    body = q.body

    # 2. PCK certificate chain to the pinned Intel SGX Root CA, valid at `at`.
    certs = parse_pem_chain(q.pck_chain_pem, reason=R_CHAIN)
    verify_chain(
        certs,
        now=at,
        chain_reason=R_CHAIN,
        expired_reason=R_EXPIRED,
        leaf_cn=("SGX PCK Certificate",),
        intermediate_cns=_PCK_CA_NAMES,
    )
    pck = _pck_extension(certs[0])
    pck_key = certs[0].public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)  # verify_chain checked it

    # 3. QE report signature by the PCK key.
    if not verify_raw_p256(pck_key, q.qe_report_signature, q.qe_report.raw):
        raise SignatureError(
            "QE report signature does not verify with the PCK key", reason=R_QE_REPORT
        )

    # 4. QE report data binds the attestation key and QE auth data.
    expected_qe_rd = hashlib.sha256(q.attestation_key + q.qe_auth_data).digest() + bytes(32)
    if not hmac.compare_digest(q.qe_report.report_data, expected_qe_rd):
        raise SignatureError(
            "QE report data does not bind the attestation key", reason=R_QE_BINDING
        )

    # 5. Quote signature by the attestation key over header || body.
    att_key = p256_from_raw(q.attestation_key)
    if att_key is None:
        raise SignatureError("attestation key is not a P-256 point", reason=R_SIGNATURE)
    if not verify_raw_p256(att_key, q.signature, q.signed_region):
        raise SignatureError(
            "quote signature does not verify with the ECDSA attestation key", reason=R_SIGNATURE
        )

    # 6. Request binding.
    if expected_report_data is not None:
        check_report_data(body.report_data, expected_report_data, "tdx")

    # 7. Collateral -> TCB status (optional).
    evaluation: TdxTcbEvaluation | None = None
    if collateral is None and fetcher is not None:
        ca = "platform" if common_name(certs[1].subject) == _PCK_CA_NAMES[0] else "processor"
        collateral = fetcher.collateral(pck.fmspc, ca, now=at)
    if collateral is not None:
        evaluation = _appraise(q, pck, certs, collateral, at)

    return TdxClaims(
        platform=Platform.TDX,
        quote_version=q.header.version,
        body_type=q.body_type,
        tee_tcb_svn=body.tee_tcb_svn,
        mr_seam=body.mr_seam,
        mr_signer_seam=body.mr_signer_seam,
        seam_attributes=body.seam_attributes,
        td_attributes=body.td_attributes,
        debug=bool(body.td_attributes[0] & 0x01),
        xfam=body.xfam,
        mr_td=body.mr_td,
        mr_config_id=body.mr_config_id,
        mr_owner=body.mr_owner,
        mr_owner_config=body.mr_owner_config,
        rtmrs=body.rtmrs,
        report_data=body.report_data,
        qe_vendor_id=q.header.qe_vendor_id,
        qe_svn=q.header.qe_svn,
        pce_svn=q.header.pce_svn,
        qe_report_isv_svn=q.qe_report.isvsvn,
        fmspc=pck.fmspc,
        pck_ppid=pck.ppid,
        pck_pcesvn=pck.tcb.pcesvn,
        pck_cpusvn=pck.tcb.cpusvn,
        tee_tcb_svn_2=body.tee_tcb_svn2,
        mr_service_td=body.mr_service_td,
        tcb_status=evaluation.status if evaluation else None,
        tcb_date=evaluation.tcb_date if evaluation else None,
        advisory_ids=evaluation.advisory_ids if evaluation else (),
    )


def _appraise(
    q: TdxQuote,
    pck: PckSgxExtension,
    certs: list[x509.Certificate],
    collateral: TdxCollateral,
    at: datetime,
) -> TdxTcbEvaluation:
    # 7a. Collateral signatures, chains, CRLs, freshness (C1-C4).
    verified = verify_tdx_collateral(collateral, now=at, pck_chain=certs)
    info = verified.tcb_info
    # 7b. The TCB Info is for this platform.
    if info.fmspc != pck.fmspc:
        raise CollateralError(
            "TCB Info FMSPC does not match the PCK certificate", reason="attest.tdx.collateral"
        )
    if info.pce_id != pck.pceid:
        raise CollateralError(
            "TCB Info PCE-ID does not match the PCK certificate", reason="attest.tdx.collateral"
        )
    # 7c. TDX module identity (MRSIGNERSEAM / SEAMATTRIBUTES).
    check_tdx_module(info, q.body.tee_tcb_svn, q.body.mr_signer_seam, q.body.seam_attributes)
    # 7d. QE identity -> QE TCB status.
    qe_status = None
    qe_level = None
    if verified.qe_identity is not None:
        qr = q.qe_report
        qe_status, qe_level = qe_identity_status(
            verified.qe_identity,
            mrsigner=qr.mrsigner,
            isvprodid=qr.isvprodid,
            isvsvn=qr.isvsvn,
            miscselect=qr.miscselect,
            attributes=qr.attributes,
        )
    # 7e. TCB level and converged status.
    return evaluate_tdx_tcb(
        info,
        pck.tcb,
        q.body.tee_tcb_svn,
        tee_tcb_svn2=q.body.tee_tcb_svn2,
        qe_status=qe_status,
        qe_level=qe_level,
    )


def verify_tdx(
    quote: bytes,
    *,
    now: datetime | None = None,
    expected_report_data: bytes | None = None,
    collateral: TdxCollateral | None = None,
    fetcher: IntelPcsFetcher | TdxCollateralDir | None = None,
) -> TdxClaims:
    """Verify an Intel TDX quote (v4/v5) offline to the pinned Intel SGX Root CA.

    ``now``: verification time (default: current UTC time).  ``expected_report_data``: the
    64-byte REPORTDATA the request requires (``weightseal.attest.report_data(...)``).
    ``collateral``: TCB Info / QE Identity / CRLs; when given, ``tcb_status``, ``tcb_date``
    and ``advisory_ids`` are filled.  ``fetcher``: only consulted when ``collateral`` is None:
    an :class:`IntelPcsFetcher` (network access is opt-in) or a :class:`TdxCollateralDir`
    (one set per FMSPC on disk).  Raises only ``AttestationError`` with ``attest.tdx.*`` reasons.
    """
    try:
        return _verify(quote, now, expected_report_data, collateral, fetcher)
    except WeightsealError:
        raise
    except Exception:  # defence in depth: nothing but our errors leaves the verifier
        raise EvidenceParseError("malformed TDX evidence", reason=R_PARSE) from None


def verify_tdx_evidence(evidence: Evidence, **kwargs: object) -> TdxClaims:
    """:func:`verify_tdx` on an :class:`Evidence` whose platform is TDX."""
    if not isinstance(evidence, Evidence) or evidence.platform is not Platform.TDX:
        raise UnsupportedEvidenceError("not TDX evidence", reason="attest.tdx.parse")
    return verify_tdx(evidence.report, **kwargs)  # type: ignore[arg-type]
