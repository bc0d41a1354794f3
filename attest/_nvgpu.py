"""NVIDIA GPU (Hopper, Blackwell) attestation verifier.

Evidence is what NVML's ``nvmlDeviceGetConfComputeGpuAttestationReport`` returns plus the
device's certificate chain (``nvmlDeviceGetConfComputeGpuCertificate``):

* the SPDM 1.1 GET_MEASUREMENTS **request** (DMTF DSP0274 1.1, 37 bytes)::

    0  SPDMVersion (0x11)        1  RequestResponseCode (0xE0 = GET_MEASUREMENTS)
    2  Param1 (bit 0: signature requested)
    3  Param2 (measurement operation; 0xFF = all measurement blocks)
    4  Nonce[32]                 36 SlotIDParam

* followed by the MEASUREMENTS **response**::

    0  SPDMVersion (0x11)        1  RequestResponseCode (0x60 = MEASUREMENTS)
    2  Param1                    3  Param2
    4  NumberOfBlocks u8         5  MeasurementRecordLength u24 LE
    8  MeasurementRecord: NumberOfBlocks x
         { Index u8, MeasurementSpecification u8 (bit 0 = DMTF), MeasurementSize u16 LE,
           Measurement = { DMTFSpecMeasurementValueType u8, ValueSize u16 LE, Value } }
    .. Nonce[32] (responder)     .. OpaqueLength u16 LE
    .. OpaqueData: NVIDIA TLVs { Type u16 LE, Length u16 LE, Value }
    .. Signature[96]: ECDSA P-384 r || s (big-endian) over
         SHA-384(request || response up to the signature)

Trailing bytes after the signature: NVML hands the report over in a fixed-size buffer, and
real samples carry zero padding after the signature (trustee's ``hopper_coco_report1`` has one
0x00 byte).  Such bytes are not signed and carry nothing, so all-zero trailing bytes are
accepted and ignored; any non-zero trailing byte is rejected (``attest.gpu.parse``).

The certificate chain is PEM, leaf first: AK leaf (``GH100 A01 GSP FMC LF``) -> device
(``GH100 A01 GSP BROM``, the "hwmodel") -> Provisioner ICA -> GH100/GB100 Identity -> NVIDIA
Device Identity CA (pinned root, ``roots/nvidia_device_root.pem``).

Verification steps (numbered as in the code below):
  1. Parse the request and response with bounds checks (``attest.gpu.parse``).
  2. Certificate chain, structure only: PEM, the pinned root (a supplied root must equal the
     pinned NVIDIA Device Identity CA), the signing (AK leaf) certificate must be present
     (``attest.gpu.chain``).
  3. Report signature by the AK leaf key (``attest.gpu.signature``).  As in NVIDIA's
     attestation SDK (the report is authenticated when it is parsed) and trustee's verifier,
     this comes before anything in the report is compared with the chain, so a forged or
     corrupted report is reported as a signature failure, not as a mismatch of unauthenticated
     fields.
  4. FWID: the signing certificate's TCG DICE FWID must exist and equal the report's OPAQUE
     FWID when the report carries one (``attest.gpu.fwid``; Hopper: 2.23.133.5.4.1,
     Blackwell: fwids[0] of the DICE TcbInfo 2.23.133.5.4.1.1); then every link's ECDSA P-384
     signature and CA constraints (``attest.gpu.chain``); validity at ``now``
     (``attest.gpu.expired``).
  5. Nonce in the request equals the expected nonce (``attest.gpu.nonce``).
  5b. With an ``ocsp`` checker: the device chain's revocation status from NVIDIA's OCSP
     responder (``_nvgpu_ocsp``: ``attest.gpu.ocsp``, ``attest.gpu.revoked``).
  6. Measurements against signed RIMs (``attest.gpu.rim``, ``attest.gpu.rim_expired``) and/or
     caller reference values (``attest.gpu.measurement``).
  7. Claims.

Revocation (NVIDIA OCSP) needs the network and is not checked here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._claims import GpuClaims, Platform
from ._errors import (
    AttestationError,
    BindingError,
    CertificateChainError,
    ClaimsError,
    CollateralError,
    EvidenceParseError,
    SignatureError,
)
from ._nvgpu_rim import RimQuery, RimSource
from ._nvgpu_x509 import (
    cert_der,
    check_validity,
    common_name,
    device_root,
    extract_fwid,
    load_pem_chain,
    verify_chain,
)

__all__ = [
    "GpuReport",
    "MeasurementBlock",
    "OPAQUE_FIELD_NAMES",
    "parse_gpu_report",
    "format_vbios_version",
    "feature_mode",
    "ueid",
    "verify_gpu",
]

SPDM_VERSION_11 = 0x11
SPDM_GET_MEASUREMENTS = 0xE0
SPDM_MEASUREMENTS = 0x60
REQUEST_LEN = 37
NONCE_LEN = 32
SIGNATURE_LEN = 96  # ECDSA P-384 r || s
MAX_REPORT_LEN = 0x10000  # NVML's buffer is 8 KiB; leave room, but cap
MEASUREMENT_SPEC_DMTF = 0x01
NVDEC_DISABLED = 0x55
PPCIE_ENABLED = 0xAA
NVDEC_RIM_INDEX = 35  # NVIDIA's 0-based RIM index; it is SPDM measurement block 36

# NVIDIA opaque-data TLV types (nvtrust local_gpu_verifier OpaqueData, attestation-sdk
# GpuOpaqueDataType).
OPAQUE_FIELD_NAMES: dict[int, str] = {
    1: "cert_issuer_name",
    2: "cert_authority_key_identifier",
    3: "driver_version",
    4: "gpu_info",
    5: "sku",
    6: "vbios_version",
    7: "manufacturer_id",
    8: "tamper_detection",
    9: "smc",
    10: "vpr",
    11: "nvdec0_status",
    12: "measurement_count",
    13: "cpr_info",
    14: "board_id",
    15: "chip_sku",
    16: "chip_sku_mod",
    17: "project",
    18: "project_sku",
    19: "project_sku_mod",
    20: "fwid",
    21: "protected_pcie_status",
    22: "switch_pdi",
    23: "floorswept_ports",
    24: "position_id",
    25: "lock_switch_status",
    32: "gpu_link_conn",
    33: "sys_enable_status",
    34: "opaque_data_version",
    35: "chip_info",
    36: "feature_flag",
    255: "invalid",
}
_FEATURE_FLAGS = {0: "SPT", 1: "MPT", 2: "PPCIE"}
_T_DRIVER, _T_VBIOS, _T_NVDEC, _T_MSRCNT, _T_BOARD = 3, 6, 11, 12, 14
_T_CHIP_SKU, _T_PROJECT, _T_PROJECT_SKU, _T_FWID, _T_PPCIE = 15, 17, 18, 20, 21
_T_CHIP_INFO, _T_FEATURE = 35, 36
_T_OPAQUE_VERSION = 34
# Highest OPAQUE_DATA_VERSION whose field layout is known (NVIDIA attestation-sdk
# GpuOpaqueDataParser::MAX_OPAQUE_DATA_VERSION); reports without the field are version 0.
MAX_OPAQUE_DATA_VERSION = 1


def _parse_error(msg: str) -> EvidenceParseError:
    return EvidenceParseError(msg, reason="attest.gpu.parse")


@dataclass(frozen=True)
class MeasurementBlock:
    index: int
    spec: int
    value_type: int  # DMTFSpecMeasurementValueType (bit 7: raw bit stream, else digest)
    value: bytes


@dataclass(frozen=True)
class GpuReport:
    """A parsed (not yet verified) SPDM GET_MEASUREMENTS request + MEASUREMENTS response."""

    spdm_version: int
    request_param1: int
    request_param2: int
    nonce: bytes  # requester nonce: the value the verifier checks
    slot_id: int
    response_param1: int
    response_param2: int
    blocks: tuple[MeasurementBlock, ...]
    responder_nonce: bytes
    opaque_raw: bytes
    opaque: tuple[tuple[int, bytes], ...]  # (type, value) in report order
    signature: bytes
    signed_data: bytes  # request || response without the signature
    trailing: int  # number of (zero) bytes ignored after the signature

    def field(self, t: int) -> bytes | None:
        for ft, v in self.opaque:
            if ft == t:
                return v
        return None

    @property
    def measurements(self) -> dict[int, bytes]:
        return {b.index: b.value for b in self.blocks}


def _decode_input(report: bytes) -> bytes:
    """Raw bytes, or the hex text NVIDIA's samples use, or base64 (NVIDIA's JSON evidence)."""
    if not isinstance(report, bytes | bytearray | memoryview):
        raise _parse_error("report must be bytes")
    data = bytes(report)
    if len(data) > 4 * MAX_REPORT_LEN:
        raise _parse_error("report too large")
    if data[:2] == bytes((SPDM_VERSION_11, SPDM_GET_MEASUREMENTS)):
        return data
    text = b"".join(data.split())
    if text[:2].lower() == b"0x":
        text = text[2:]
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _parse_error("report is neither raw SPDM bytes, hex nor base64") from None
    return decoded


def parse_gpu_report(report: bytes) -> GpuReport:
    """Step 1: parse (no verification).  Raises ``EvidenceParseError(attest.gpu.parse)``."""
    data = _decode_input(report)
    if len(data) > MAX_REPORT_LEN:
        raise _parse_error("report too large")
    if len(data) < REQUEST_LEN + 8 + NONCE_LEN + 2 + SIGNATURE_LEN:
        raise _parse_error("report too short")
    # 1a. GET_MEASUREMENTS request
    req = data[:REQUEST_LEN]
    version, code, p1, p2 = req[0], req[1], req[2], req[3]
    if version != SPDM_VERSION_11:
        raise _parse_error(f"unsupported SPDM version 0x{version:02x} in request")
    if code != SPDM_GET_MEASUREMENTS:
        raise _parse_error("request is not GET_MEASUREMENTS")
    if not p1 & 0x01:
        raise _parse_error("request did not ask for a signed response")
    if p2 != 0xFF:
        raise _parse_error("request did not ask for all measurement blocks")
    nonce = req[4 : 4 + NONCE_LEN]
    slot_id = req[36]
    # 1b. MEASUREMENTS response header
    resp = data[REQUEST_LEN:]
    if resp[0] != version:
        raise _parse_error("response SPDM version differs from the request's")
    if resp[1] != SPDM_MEASUREMENTS:
        raise _parse_error("response is not MEASUREMENTS")
    nblocks = resp[4]
    rec_len = int.from_bytes(resp[5:8], "little")
    if nblocks == 0:
        raise _parse_error("no measurement blocks")
    pos = 8
    rec_end = pos + rec_len
    if rec_end + NONCE_LEN + 2 > len(resp):
        raise _parse_error("measurement record length past end of report")
    # 1c. measurement blocks
    blocks: list[MeasurementBlock] = []
    seen: set[int] = set()
    while pos < rec_end:
        if pos + 4 > rec_end:
            raise _parse_error("truncated measurement block header")
        idx, spec, size = struct.unpack_from("<BBH", resp, pos)
        pos += 4
        if pos + size > rec_end:
            raise _parse_error("measurement block past end of record")
        if idx in (0x00, 0xFF) or idx in seen:
            raise _parse_error(f"invalid or duplicate measurement index {idx}")
        seen.add(idx)
        if spec != MEASUREMENT_SPEC_DMTF:
            raise _parse_error(f"measurement block {idx} is not in DMTF format")
        if size < 3:
            raise _parse_error(f"measurement block {idx} too short")
        vtype = resp[pos]
        vsize = int.from_bytes(resp[pos + 1 : pos + 3], "little")
        if vsize != size - 3:
            raise _parse_error(f"measurement block {idx} value size mismatch")
        blocks.append(MeasurementBlock(idx, spec, vtype, bytes(resp[pos + 3 : pos + size])))
        pos += size
    if len(blocks) != nblocks:
        raise _parse_error("number of measurement blocks does not match NumberOfBlocks")
    # 1d. responder nonce, opaque data
    responder_nonce = resp[pos : pos + NONCE_LEN]
    pos += NONCE_LEN
    opaque_len = int.from_bytes(resp[pos : pos + 2], "little")
    pos += 2
    if pos + opaque_len + SIGNATURE_LEN > len(resp):
        raise _parse_error("opaque data / signature past end of report")
    opaque_raw = resp[pos : pos + opaque_len]
    opaque = _parse_opaque(opaque_raw)
    pos += opaque_len
    # 1e. signature, trailing padding
    signature = resp[pos : pos + SIGNATURE_LEN]
    pos += SIGNATURE_LEN
    trailing = resp[pos:]
    if trailing.strip(b"\x00"):
        raise _parse_error("non-zero bytes after the signature")
    return GpuReport(
        spdm_version=version,
        request_param1=p1,
        request_param2=p2,
        nonce=bytes(nonce),
        slot_id=slot_id,
        response_param1=resp[2],
        response_param2=resp[3],
        blocks=tuple(blocks),
        responder_nonce=bytes(responder_nonce),
        opaque_raw=bytes(opaque_raw),
        opaque=opaque,
        signature=bytes(signature),
        signed_data=bytes(data[: REQUEST_LEN + pos - SIGNATURE_LEN]),
        trailing=len(trailing),
    )


def _parse_opaque(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise _parse_error("truncated opaque-data TLV header")
        t, n = struct.unpack_from("<HH", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise _parse_error(f"opaque-data field {t} past end")
        if t in seen:
            raise _parse_error(f"duplicate opaque-data field {t}")
        seen.add(t)
        out.append((t, bytes(raw[pos : pos + n])))
        pos += n
    return tuple(out)


def _cstr(v: bytes, what: str) -> str:
    """A NUL-terminated / NUL-padded ASCII string."""
    head, _, tail = v.partition(b"\x00")
    if tail.strip(b"\x00"):
        raise _parse_error(f"{what}: data after the terminating NUL")
    try:
        s = head.decode("ascii")
    except UnicodeDecodeError:
        raise _parse_error(f"{what}: not ASCII") from None
    if not s.isprintable():
        raise _parse_error(f"{what}: non-printable characters")
    return s


def format_vbios_version(raw: bytes) -> str:
    """NVIDIA's VBIOS version string: the 8 bytes read little-endian as 16 hex digits
    ``h``; then ``h[8:16] + h[6:8]`` split into dotted pairs, e.g. ``96.00.9f.00.01``."""
    if len(raw) != 8:
        raise _parse_error("VBIOS version must be 8 bytes")
    h = raw[::-1].hex()
    s = h[8:16] + h[6:8]
    return ".".join(s[i : i + 2] for i in range(0, 10, 2))


def _le_int(v: bytes, what: str, max_len: int = 8) -> int:
    if not 1 <= len(v) <= max_len:
        raise _parse_error(f"{what}: bad length")
    return int.from_bytes(v, "little")


def _opaque_text(report: GpuReport) -> dict[str, str]:
    out: dict[str, str] = {}
    for t, v in report.opaque:
        out[OPAQUE_FIELD_NAMES.get(t, f"type_{t}")] = v.hex()
    return out


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise AttestationError("now must be a datetime", reason="attest.gpu.parse")
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


_CHIP_RE = re.compile(r"\bG([HB])\d{3}\b")


def _architecture(*names: str | None) -> str:
    """Hopper for GHxxx chips (H100/H200/H20/GH200), Blackwell for GBxxx (B100/B200/GB200,
    RTX PRO 6000); from the first name that carries a chip code (opaque CHIP_INFO, then the
    certificate names)."""
    for name in names:
        m = _CHIP_RE.search(name.upper()) if name else None
        if m:
            return "hopper" if m.group(1) == "H" else "blackwell"
    raise CertificateChainError(f"unsupported GPU model {names[1]!r}", reason="attest.gpu.chain")


def verify_gpu(
    report: bytes,
    certs: bytes,
    *,
    now: datetime | None = None,
    expected_nonce: bytes | None = None,
    rims: Sequence[bytes] | RimSource = (),
    reference: Mapping[int, Sequence[bytes]] | None = None,
    ocsp: Any = None,
) -> GpuClaims:
    """Verify NVIDIA GPU evidence and return its claims (or raise an ``AttestationError``).

    ``report``: SPDM request || response, raw, hex text or base64.  ``certs``: the PEM device
    chain, leaf first (the pinned root may be included or left out).  ``expected_nonce``: the
    32-byte SPDM nonce the caller asked for.  ``rims``: signed RIM documents (one driver RIM
    and one VBIOS RIM, SWID XML with xmldsig), or a ``RimSource`` to get them from by the
    report's versions (:class:`RimStore`: a directory; :class:`NvidiaRimService`: fetched).
    ``ocsp``: an :class:`NvidiaOcsp` to check the device chain's revocation status with
    (network); the claims then say ``ocsp_checked=True``.
    ``reference``: ``{SPDM measurement index: [allowed digests]}``, keyed like ``GpuClaims.measurements`` (1-based block indexes).
    """
    try:
        return _verify(report, certs, now, expected_nonce, rims, reference, ocsp)
    except AttestationError:
        raise
    except Exception as exc:  # defence in depth: only our errors escape
        raise EvidenceParseError(f"malformed GPU evidence ({type(exc).__name__})", reason="attest.gpu.parse") from None


def _verify(
    report: bytes,
    certs: bytes,
    now_in: datetime | None,
    expected_nonce: bytes | None,
    rims: Sequence[bytes] | RimSource,
    reference: Mapping[int, Sequence[bytes]] | None,
    ocsp: Any = None,
) -> GpuClaims:
    now = _utc(now_in)
    # 1. Parse the evidence.
    rep = parse_gpu_report(report)
    drv = rep.field(_T_DRIVER)
    vb = rep.field(_T_VBIOS)
    if drv is None or vb is None:
        raise _parse_error("opaque data lacks the driver or VBIOS version")
    driver_version = _cstr(drv, "driver version")
    if not driver_version:
        raise _parse_error("empty driver version")
    vbios_version = format_vbios_version(vb)
    nvdec = rep.field(_T_NVDEC)
    if nvdec is not None and len(nvdec) != 1:
        raise _parse_error("NVDEC0 status must be 1 byte")
    opaque_version = rep.field(_T_OPAQUE_VERSION)
    if opaque_version is not None and _le_int(opaque_version, "opaque data version") > MAX_OPAQUE_DATA_VERSION:
        # a newer layout may give the fields another meaning: refuse rather than misread it
        raise _parse_error("opaque data version not supported")
    chip_info_raw = rep.field(_T_CHIP_INFO)
    chip_info = _cstr(chip_info_raw, "chip info") if chip_info_raw is not None else None
    report_fwid = rep.field(_T_FWID)
    if report_fwid is not None and len(report_fwid) == 0:
        raise _parse_error("empty FWID field")

    # 2. Certificate chain, structure: the signing (AK leaf) certificate is present.
    try:
        chain_in, leaf = _load_chain(certs)
    except AttestationError:
        raise
    except Exception as exc:  # lazily parsed fields of a malformed certificate
        raise CertificateChainError(f"malformed certificate: {type(exc).__name__}", reason="attest.gpu.chain") from None

    # 3. Report signature: ECDSA P-384 / SHA-384 by the AK leaf key (before any field of the
    #    report is compared with the chain: only an authenticated report is interpreted).
    try:
        key = leaf.public_key()
    except Exception:
        raise SignatureError("attestation key cannot be loaded", reason="attest.gpu.signature") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise SignatureError("attestation key is not ECDSA P-384", reason="attest.gpu.signature")
    r = int.from_bytes(rep.signature[:48], "big")
    s = int.from_bytes(rep.signature[48:], "big")
    try:
        key.verify(encode_dss_signature(r, s), rep.signed_data, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise SignatureError("GPU attestation report signature does not verify", reason="attest.gpu.signature") from None

    # 4. FWID of the signing certificate vs the report; every link to the pinned root; validity.
    try:
        chain, arch, hwmodel, cert_fwid = _check_chain(chain_in, leaf, chip_info, report_fwid, now)
    except AttestationError:
        raise
    except Exception as exc:  # lazily parsed fields of a malformed certificate
        raise CertificateChainError(f"malformed certificate: {type(exc).__name__}", reason="attest.gpu.chain") from None

    # 5. Nonce in the GET_MEASUREMENTS request.
    if expected_nonce is not None:
        if not isinstance(expected_nonce, bytes | bytearray) or len(expected_nonce) != NONCE_LEN:
            raise BindingError("expected GPU nonce must be 32 bytes", reason="attest.gpu.nonce")
        if not hmac.compare_digest(rep.nonce, bytes(expected_nonce)):
            raise BindingError("GPU nonce does not match the expected nonce", reason="attest.gpu.nonce")

    # 5b. Revocation of the device chain (NVIDIA OCSP), when configured: after everything
    # local verified, so garbage evidence never causes a request.
    ocsp_checked = False
    if ocsp is not None:
        try:
            ocsp.check_chain([*chain, device_root()], now=now)
        except AttestationError:
            raise
        except Exception as exc:
            raise CollateralError(f"OCSP check failed ({type(exc).__name__})", reason="attest.gpu.ocsp") from None
        ocsp_checked = True

    # 6. Measurements against signed RIMs and/or reference values.
    measurements = rep.measurements
    skip_blocks = {NVDEC_RIM_INDEX + 1} if nvdec == bytes((NVDEC_DISABLED,)) else set()
    verified = False
    board = rep.field(_T_BOARD)
    chip_sku = rep.field(_T_CHIP_SKU)
    project = rep.field(_T_PROJECT)
    project_sku = rep.field(_T_PROJECT_SKU)
    chip_sku_s = _cstr(chip_sku, "chip SKU") if chip_sku is not None else None
    project_s = _cstr(project, "project") if project is not None else None
    project_sku_s = _cstr(project_sku, "project SKU") if project_sku is not None else None
    if not isinstance(rims, Sequence):
        # a RimSource (RimStore, NvidiaRimService): asked only now, after everything else
        # about the report verified
        query = RimQuery(architecture=arch, driver_version=driver_version, vbios_version=vbios_version,
                         chip=chip_info, project=project_s, project_sku=project_sku_s, chip_sku=chip_sku_s)
        try:
            rims = rims.rims_for(query)
        except AttestationError:
            raise
        except Exception as exc:
            raise CollateralError(f"RIM source failed ({type(exc).__name__})", reason="attest.gpu.rim") from None
    if rims:
        from ._nvgpu_rim import check_rims

        check_rims(rims, now=now, measurements=measurements, driver_version=driver_version,
                   vbios_version=vbios_version, skip_blocks=skip_blocks)
        verified = True
    if reference is not None:
        _check_reference(reference, measurements, skip_blocks)
        verified = True

    # 7. Claims.
    return GpuClaims(
        platform=Platform.NVGPU,
        architecture=arch,
        nonce=rep.nonce,
        driver_version=driver_version,
        vbios_version=vbios_version,
        # The evidence has no explicit CC-mode field.  NVIDIA's golden measurements cover the
        # CC configuration (a GPU in DevTools or CC-off mode fails the RIM comparison), so CC
        # mode is established only once the measurements were verified.
        cc_enabled=True if verified else None,
        ppcie=_ppcie(rep),
        measurements=measurements,
        fwid=cert_fwid,
        board_id=board,
        chip_sku=chip_sku_s,
        project=project_s,
        project_sku=project_sku_s,
        ak_serial=format(leaf.serial_number, "x"),
        hwmodel=hwmodel,
        measurements_verified=verified,
        opaque=_opaque_text(rep),
        ocsp_checked=ocsp_checked,
    )


def _load_chain(certs: bytes) -> tuple[list[x509.Certificate], x509.Certificate]:
    """Step 2: parse the PEM chain and find the signing certificate (structure only; the
    links are verified in step 4)."""
    chain_in = load_pem_chain(certs, "attest.gpu.chain")
    root = device_root()
    chain_wo_root = list(chain_in)
    if chain_wo_root and cert_der(chain_wo_root[-1]) == cert_der(root):
        chain_wo_root.pop()
    if not chain_wo_root:
        raise CertificateChainError(
            "certificate chain must have at least the root CA and signing certificates",
            reason="attest.gpu.chain",
        )
    return chain_in, chain_wo_root[0]


def _check_chain(
    chain_in: list[x509.Certificate],
    leaf: x509.Certificate,
    chip_info: str | None,
    report_fwid: bytes | None,
    now: datetime,
) -> tuple[list[x509.Certificate], str, str | None, bytes]:
    """Step 4 (see the module docstring)."""
    # 4a. FWID of the signing certificate vs the (authenticated) report.
    hwmodel = common_name(leaf.issuer)
    arch = _architecture(chip_info, hwmodel, common_name(leaf.subject))
    cert_fwid = extract_fwid(leaf, prefer_tcbinfo=(arch == "blackwell"), reason="attest.gpu.fwid")
    if report_fwid is not None and not hmac.compare_digest(cert_fwid, report_fwid):
        raise CertificateChainError("FWID in the report differs from the signing certificate's", reason="attest.gpu.fwid")
    # 4b. every link, constraints, pinned root.
    root = device_root()
    chain = verify_chain(chain_in, root, reason="attest.gpu.chain", require_p384=True)
    # 4c. validity at `now` (after the signatures, so expiry is reported as such).
    check_validity([*chain, root], now, reason="attest.gpu.expired")
    return chain, arch, hwmodel, cert_fwid


def _ppcie(rep: GpuReport) -> bool:
    """Protected-PCIe mode: every indicator present says on, and at least one is present."""
    status = rep.field(_T_PPCIE)
    flag = rep.field(_T_FEATURE)
    if status is None and flag is None:
        return False
    ok = True
    if status is not None:
        ok = ok and status == bytes((PPCIE_ENABLED,))
    if flag is not None:
        ok = ok and _FEATURE_FLAGS.get(_le_int(flag, "feature flag")) == "PPCIE"
    return ok


def feature_mode(claims: GpuClaims) -> str | None:
    """``SPT`` / ``MPT`` / ``PPCIE`` from the FEATURE_FLAG opaque field, if present."""
    raw = claims.opaque.get("feature_flag")
    if raw is None:
        return None
    return _FEATURE_FLAGS.get(int.from_bytes(bytes.fromhex(raw), "little"))


def ueid(claims: GpuClaims) -> str:
    """NVIDIA's ``ueid`` claim: the AK leaf certificate serial number in decimal."""
    return str(int(claims.ak_serial, 16))


def _check_reference(
    reference: Mapping[int, Sequence[bytes]], measurements: Mapping[int, bytes], skip: set[int]
) -> None:
    if not isinstance(reference, Mapping) or not reference:
        raise ClaimsError("empty GPU reference values", reason="attest.gpu.measurement")
    bad: list[int] = []
    for idx, allowed in reference.items():
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise ClaimsError("reference index must be an int", reason="attest.gpu.measurement")
        if idx in skip:
            continue
        actual = measurements.get(idx)
        vals = [bytes(a) for a in allowed] if isinstance(allowed, Sequence) and not isinstance(allowed, bytes | str) else []
        if actual is None or not any(hmac.compare_digest(actual, v) for v in vals):
            bad.append(idx)
    if bad:
        raise ClaimsError(f"GPU measurements differ from reference at {sorted(bad)}", reason="attest.gpu.measurement")
