"""Intel TDX collateral: TCB Info (TDX, v3), QE Identity (TD_QE, v2), PCK and Root CRLs.

Verification follows Intel's "TDX DCAP Quote Verification" flow (Intel QVL, the steps
numbered 4.1.2.4.x in its sources) and the Intel PCS API v4 documentation of the TCB Info and
Enclave Identity structures:

  C1. TCB Info: the issuer chain (Intel SGX TCB Signing -> pinned Intel SGX Root CA) verifies
      and is valid now; ``signature`` (hex r||s, ECDSA P-256/SHA-256) verifies over the exact
      bytes of the ``tcbInfo`` JSON value as received; id "TDX", version 3, tcbType 0;
      issueDate <= now <= nextUpdate.
  C2. QE Identity: the same for ``enclaveIdentity`` (id "TD_QE", version 2).
  C3. Root CRL: issued and signed by the Root CA, current, revokes neither the PCK CA nor the
      TCB Signing certificate.
  C4. PCK CRL: issued and signed by the quote's PCK CA (Platform or Processor), current,
      does not revoke the PCK certificate.
  C5. (with the quote) FMSPC and PCE-ID of the PCK certificate equal the TCB Info's; the TDX
      module (MRSIGNERSEAM, SEAMATTRIBUTES) matches ``tdxModule`` or the
      ``tdxModuleIdentities["TDX_%02X" % TEE_TCB_SVN[1]]`` entry; QE identity (MRSIGNER,
      ISVPRODID, masked MISCSELECT and ATTRIBUTES) matches and its ISVSVN selects a QE status;
      TCB level selection and status convergence as in Intel QVL (see
      :func:`evaluate_tdx_tcb`).

Nothing is fetched unless a caller configures an :class:`IntelPcsFetcher`; :class:`TdxCollateralDir`
serves collateral that an operator keeps on disk, one set per FMSPC.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ._claims import TDX_TCB_STATUSES
from ._errors import AttestationError, CollateralError, TcbError
from ._files import read_limited
from ._http import https_get
from ._tdx_der import PckTcb
from ._tdx_pki import (
    check_crl,
    intel_sgx_root_ca,
    load_crl,
    parse_pem_chain,
    verify_chain,
    verify_raw_p256,
)

__all__ = [
    "TdxCollateral",
    "TdxTcbLevel",
    "TdxModuleLevel",
    "TdxModuleIdentity",
    "TdxTcbInfo",
    "QeIdentityLevel",
    "TdxQeIdentity",
    "VerifiedTdxCollateral",
    "TdxTcbEvaluation",
    "parse_tcb_info",
    "parse_qe_identity",
    "verify_tdx_collateral",
    "match_tcb_levels",
    "evaluate_tdx_tcb",
    "qe_identity_status",
    "IntelPcsFetcher",
    "TdxCollateralDir",
    "load_tdx_collateral_dir",
    "COLLATERAL_FILES",
    "TCB_LEVEL_STATUSES",
]

R_COLLATERAL = "attest.tdx.collateral"
R_EXPIRED = "attest.tdx.collateral_expired"
R_TCB = "attest.tdx.tcb_status"
R_REVOKED = "attest.tdx.revoked"

_MAX_JSON = 1024 * 1024

TCB_LEVEL_STATUSES = frozenset(TDX_TCB_STATUSES)
_IDENTITY_STATUSES = frozenset({"UpToDate", "OutOfDate", "Revoked"})


@dataclass(frozen=True)
class TdxCollateral:
    """Collateral for one TDX platform (FMSPC), as served by Intel PCS (API v4) or a PCCS.

    ``tcb_info`` / ``qe_identity``: the raw JSON response bodies, byte for byte.
    ``*_issuer_chain``: the URL-decoded PEM of the ``TCB-Info-Issuer-Chain`` /
    ``SGX-Enclave-Identity-Issuer-Chain`` response headers.  CRLs: DER, PEM or hex DER.
    The PCK CRL is checked against the PCK CA carried in the quote; ``pck_crl_issuer_chain``
    is optional and, when given, must name that same CA.

    Verification is fail-closed: unless ``allow_partial`` is set, the QE identity and both
    CRLs are required.  ``allow_partial=True`` (TCB Info only, e.g. when current CRLs are not
    available offline) must be a deliberate choice of the caller.
    """

    tcb_info: bytes
    tcb_info_issuer_chain: bytes
    qe_identity: bytes | None = None
    qe_identity_issuer_chain: bytes | None = None
    pck_crl: bytes | None = None
    root_crl: bytes | None = None
    pck_crl_issuer_chain: bytes | None = None
    allow_partial: bool = False

    def __repr__(self) -> str:
        parts = [
            f"{k}={'set' if getattr(self, k) is not None else 'None'}"
            for k in ("qe_identity", "pck_crl", "root_crl", "pck_crl_issuer_chain")
        ]
        return f"TdxCollateral(tcb_info={len(self.tcb_info)} bytes, {', '.join(parts)}, allow_partial={self.allow_partial})"


# ---------------------------------------------------------------------------------------------
# Parsed structures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TdxTcbLevel:
    sgx_svns: tuple[int, ...]  # 16
    pcesvn: int
    tdx_svns: tuple[int, ...]  # 16
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TdxModuleLevel:
    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str  # "TDX_01" ...; "" for the base ``tdxModule`` entry
    mrsigner: bytes  # 48
    attributes: bytes  # 8
    attributes_mask: bytes  # 8
    levels: tuple[TdxModuleLevel, ...] = ()


@dataclass(frozen=True)
class TdxTcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes  # 6
    pce_id: bytes  # 2
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModuleIdentity
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TdxTcbLevel, ...]
    signed_body: bytes = field(default=b"", repr=False)  # exact bytes of the tcbInfo value
    signature: bytes = field(default=b"", repr=False)  # 64, r||s


@dataclass(frozen=True)
class QeIdentityLevel:
    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TdxQeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes  # 16
    attributes_mask: bytes  # 16
    mrsigner: bytes  # 32
    isvprodid: int
    levels: tuple[QeIdentityLevel, ...]
    signed_body: bytes = field(default=b"", repr=False)
    signature: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class VerifiedTdxCollateral:
    tcb_info: TdxTcbInfo
    qe_identity: TdxQeIdentity | None
    crls_checked: bool


@dataclass(frozen=True)
class TdxTcbEvaluation:
    status: str  # Intel QVL status name, e.g. "UpToDate", "OutOfDate", "TDRelaunchAdvised"
    tcb_date: str
    advisory_ids: tuple[str, ...]
    sgx_level: TdxTcbLevel
    tdx_level: TdxTcbLevel
    tdx_module_status: str
    qe_status: str | None


# ---------------------------------------------------------------------------------------------
# Strict JSON helpers
# ---------------------------------------------------------------------------------------------


def _cerr(msg: str) -> CollateralError:
    return CollateralError(msg, reason=R_COLLATERAL)


def _reject_constant(name: str) -> Any:
    raise _cerr(f"invalid JSON constant {name}")


def _top_level_spans(raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parse a top-level JSON object; return its values and the exact bytes of each value."""
    if not isinstance(raw, bytes | bytearray) or len(raw) > _MAX_JSON:
        raise _cerr("collateral JSON missing or too large")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _cerr("collateral JSON is not UTF-8") from None
    dec = json.JSONDecoder(parse_constant=_reject_constant)
    ws = " \t\r\n"
    values: dict[str, Any] = {}
    spans: dict[str, bytes] = {}
    try:
        i = 0
        while i < len(text) and text[i] in ws:
            i += 1
        if i >= len(text) or text[i] != "{":
            raise _cerr("collateral JSON is not an object")
        i += 1
        first = True
        while True:
            while i < len(text) and text[i] in ws:
                i += 1
            if i < len(text) and text[i] == "}" and first:
                i += 1
                break
            if i >= len(text) or text[i] != '"':
                raise _cerr("collateral JSON: expected a key")
            key, i = json.decoder.scanstring(text, i + 1, True)  # type: ignore[attr-defined]
            while i < len(text) and text[i] in ws:
                i += 1
            if i >= len(text) or text[i] != ":":
                raise _cerr("collateral JSON: expected ':'")
            i += 1
            while i < len(text) and text[i] in ws:
                i += 1
            value, end = dec.raw_decode(text, i)
            if key in values:
                raise _cerr("collateral JSON: duplicate key")
            values[key] = value
            spans[key] = text[i:end].encode("utf-8")
            i = end
            first = False
            while i < len(text) and text[i] in ws:
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            if i < len(text) and text[i] == "}":
                i += 1
                break
            raise _cerr("collateral JSON: expected ',' or '}'")
        while i < len(text) and text[i] in ws:
            i += 1
        if i != len(text):
            raise _cerr("collateral JSON: trailing data")
    except CollateralError:
        raise
    except (ValueError, RecursionError):
        raise _cerr("collateral JSON is malformed") from None
    return values, spans


def _get(obj: Any, key: str, typ: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise _cerr("collateral JSON: expected an object")
    if key not in obj:
        if optional:
            return None
        raise _cerr(f"collateral JSON: '{key}' missing")
    v = obj[key]
    if typ is int and isinstance(v, bool):
        raise _cerr(f"collateral JSON: '{key}' has the wrong type")
    if not isinstance(v, typ):
        raise _cerr(f"collateral JSON: '{key}' has the wrong type")
    return v


def _uint(obj: Any, key: str, max_value: int) -> int:
    v = _get(obj, key, int)
    if isinstance(v, bool) or not 0 <= v <= max_value:
        raise _cerr(f"collateral JSON: '{key}' out of range")
    return int(v)


def _hex(obj: Any, key: str, size: int) -> bytes:
    s = _get(obj, key, str)
    if len(s) != 2 * size:
        raise _cerr(f"collateral JSON: '{key}' must be {size} bytes of hex")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise _cerr(f"collateral JSON: '{key}' is not hex") from None


def _date(obj: Any, key: str) -> datetime:
    s = _get(obj, key, str)
    try:
        d = datetime.fromisoformat(s)
    except ValueError:
        raise _cerr(f"collateral JSON: '{key}' is not a date") from None
    if d.tzinfo is None:
        raise _cerr(f"collateral JSON: '{key}' has no time zone")
    return d.astimezone(UTC)


def _status(obj: Any, allowed: frozenset[str]) -> str:
    s = _get(obj, "tcbStatus", str)
    if s not in allowed:
        raise _cerr(f"collateral JSON: unknown tcbStatus '{s[:40]}'")
    return str(s)


def _advisories(obj: Any) -> tuple[str, ...]:
    adv = _get(obj, "advisoryIDs", list, optional=True)
    if adv is None:
        return ()
    if not all(isinstance(a, str) for a in adv):
        raise _cerr("collateral JSON: advisoryIDs must be strings")
    return tuple(adv)


def _svn_list(obj: Any, key: str) -> tuple[int, ...]:
    comps = _get(obj, key, list)
    if len(comps) != 16:
        raise _cerr(f"collateral JSON: '{key}' must have 16 components")
    return tuple(_uint(c, "svn", 255) for c in comps)


def _signature(values: dict[str, Any]) -> bytes:
    sig = _hex(values, "signature", 64)
    return sig


def _module_levels(obj: Any) -> tuple[TdxModuleLevel, ...]:
    levels = _get(obj, "tcbLevels", list)
    out = []
    for lv in levels:
        tcb = _get(lv, "tcb", dict)
        out.append(
            TdxModuleLevel(
                isvsvn=_uint(tcb, "isvsvn", 255),
                tcb_date=_get(lv, "tcbDate", str),
                status=_status(lv, _IDENTITY_STATUSES),
                advisory_ids=_advisories(lv),
            )
        )
    return tuple(out)


def parse_tcb_info(raw: bytes) -> TdxTcbInfo:
    """Parse a TDX TCB Info response body (``{"tcbInfo": {...}, "signature": "..."}``).
    Structure only; the signature is checked by :func:`verify_tdx_collateral`."""
    values, spans = _top_level_spans(raw)
    info = _get(values, "tcbInfo", dict)
    sig = _signature(values)
    tdx_module_obj = _get(info, "tdxModule", dict)
    base_module = TdxModuleIdentity(
        id="",
        mrsigner=_hex(tdx_module_obj, "mrsigner", 48),
        attributes=_hex(tdx_module_obj, "attributes", 8),
        attributes_mask=_hex(tdx_module_obj, "attributesMask", 8),
    )
    identities = []
    for ident in _get(info, "tdxModuleIdentities", list, optional=True) or []:
        identities.append(
            TdxModuleIdentity(
                id=_get(ident, "id", str),
                mrsigner=_hex(ident, "mrsigner", 48),
                attributes=_hex(ident, "attributes", 8),
                attributes_mask=_hex(ident, "attributesMask", 8),
                levels=_module_levels(ident),
            )
        )
    levels = []
    for lv in _get(info, "tcbLevels", list):
        tcb = _get(lv, "tcb", dict)
        levels.append(
            TdxTcbLevel(
                sgx_svns=_svn_list(tcb, "sgxtcbcomponents"),
                pcesvn=_uint(tcb, "pcesvn", 0xFFFF),
                tdx_svns=_svn_list(tcb, "tdxtcbcomponents"),
                tcb_date=_get(lv, "tcbDate", str),
                status=_status(lv, TCB_LEVEL_STATUSES),
                advisory_ids=_advisories(lv),
            )
        )
    if not levels:
        raise _cerr("TCB Info has no TCB levels")
    return TdxTcbInfo(
        id=_get(info, "id", str),
        version=_uint(info, "version", 0xFFFF),
        issue_date=_date(info, "issueDate"),
        next_update=_date(info, "nextUpdate"),
        fmspc=_hex(info, "fmspc", 6),
        pce_id=_hex(info, "pceId", 2),
        tcb_type=_uint(info, "tcbType", 0xFFFF),
        tcb_evaluation_data_number=_uint(info, "tcbEvaluationDataNumber", 0xFFFFFFFF),
        tdx_module=base_module,
        tdx_module_identities=tuple(identities),
        tcb_levels=tuple(levels),
        signed_body=spans["tcbInfo"],
        signature=sig,
    )


def parse_qe_identity(raw: bytes) -> TdxQeIdentity:
    """Parse a QE Identity response body (``{"enclaveIdentity": {...}, "signature": "..."}``)."""
    values, spans = _top_level_spans(raw)
    ident = _get(values, "enclaveIdentity", dict)
    sig = _signature(values)
    levels = []
    for lv in _get(ident, "tcbLevels", list):
        tcb = _get(lv, "tcb", dict)
        levels.append(
            QeIdentityLevel(
                isvsvn=_uint(tcb, "isvsvn", 0xFFFF),
                tcb_date=_get(lv, "tcbDate", str),
                status=_status(lv, _IDENTITY_STATUSES),
                advisory_ids=_advisories(lv),
            )
        )
    return TdxQeIdentity(
        id=_get(ident, "id", str),
        version=_uint(ident, "version", 0xFFFF),
        issue_date=_date(ident, "issueDate"),
        next_update=_date(ident, "nextUpdate"),
        tcb_evaluation_data_number=_uint(ident, "tcbEvaluationDataNumber", 0xFFFFFFFF),
        miscselect=int.from_bytes(_hex(ident, "miscselect", 4), "big"),
        miscselect_mask=int.from_bytes(_hex(ident, "miscselectMask", 4), "big"),
        attributes=_hex(ident, "attributes", 16),
        attributes_mask=_hex(ident, "attributesMask", 16),
        mrsigner=_hex(ident, "mrsigner", 32),
        isvprodid=_uint(ident, "isvprodid", 0xFFFF),
        levels=tuple(levels),
        signed_body=spans["enclaveIdentity"],
        signature=sig,
    )


# ---------------------------------------------------------------------------------------------
# Signature, chain, CRL and freshness checks (C1-C4)
# ---------------------------------------------------------------------------------------------


def _verify_signed_json(
    body: bytes, signature: bytes, issuer_chain: bytes | None, now: datetime, what: str
) -> list[x509.Certificate]:
    if issuer_chain is None:
        raise _cerr(f"{what} issuer chain missing")
    certs = parse_pem_chain(issuer_chain, reason=R_COLLATERAL)
    verify_chain(
        certs,
        now=now,
        chain_reason=R_COLLATERAL,
        expired_reason=R_EXPIRED,
        leaf_cn=("Intel SGX TCB Signing",),
    )
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not verify_raw_p256(key, signature, body):
        raise _cerr(f"{what} signature does not verify")
    return certs


def _fresh(issue: datetime, next_update: datetime, now: datetime, what: str) -> None:
    if now > next_update:
        raise CollateralError(
            f"{what} has expired (nextUpdate {next_update.isoformat()})", reason=R_EXPIRED
        )
    if now < issue:
        raise CollateralError(
            f"{what} is not yet valid (issueDate {issue.isoformat()})", reason=R_EXPIRED
        )


def verify_tdx_collateral(
    collateral: TdxCollateral,
    *,
    now: datetime,
    pck_chain: list[x509.Certificate] | None = None,
) -> VerifiedTdxCollateral:
    """Steps C1-C4.  ``pck_chain`` (leaf, PCK CA, root; already verified) is needed for the
    CRL checks; without it CRLs are not consulted (only allowed with ``allow_partial``)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    if not isinstance(collateral, TdxCollateral):
        raise _cerr("collateral must be a TdxCollateral")
    if not collateral.allow_partial and (
        collateral.qe_identity is None
        or collateral.pck_crl is None
        or collateral.root_crl is None
        or pck_chain is None
    ):
        raise _cerr("incomplete collateral (QE identity and both CRLs are required)")

    # C1. TCB Info
    tcb_info = parse_tcb_info(collateral.tcb_info)
    tcb_certs = _verify_signed_json(
        tcb_info.signed_body, tcb_info.signature, collateral.tcb_info_issuer_chain, now, "TCB Info"
    )
    if tcb_info.id != "TDX" or tcb_info.version != 3:
        raise _cerr("TCB Info is not a TDX TCB Info v3")
    if tcb_info.tcb_type != 0:
        raise _cerr("unsupported TCB Info tcbType")
    _fresh(tcb_info.issue_date, tcb_info.next_update, now, "TCB Info")

    # C2. QE Identity
    qe: TdxQeIdentity | None = None
    signing_certs = [tcb_certs[0]]
    if collateral.qe_identity is not None:
        qe = parse_qe_identity(collateral.qe_identity)
        qe_certs = _verify_signed_json(
            qe.signed_body,
            qe.signature,
            collateral.qe_identity_issuer_chain or collateral.tcb_info_issuer_chain,
            now,
            "QE Identity",
        )
        if qe.id != "TD_QE" or qe.version != 2:
            raise _cerr("QE Identity is not a TD_QE identity v2")
        _fresh(qe.issue_date, qe.next_update, now, "QE Identity")
        signing_certs.append(qe_certs[0])

    crls_checked = False
    if pck_chain is not None and (
        collateral.root_crl is not None or collateral.pck_crl is not None
    ):
        root = intel_sgx_root_ca()
        leaf, pck_ca = pck_chain[0], pck_chain[1]
        # C3. Root CRL
        if collateral.root_crl is not None:
            root_crl = load_crl(collateral.root_crl, reason=R_COLLATERAL)
            check_crl(
                root_crl,
                root,
                [pck_ca, *signing_certs],
                now=now,
                collateral_reason=R_COLLATERAL,
                expired_reason=R_EXPIRED,
                revoked_reason=R_REVOKED,
            )
        # C4. PCK CRL
        if collateral.pck_crl is not None:
            if collateral.pck_crl_issuer_chain is not None:
                issuer = parse_pem_chain(collateral.pck_crl_issuer_chain, reason=R_COLLATERAL)
                if issuer[0].public_bytes(Encoding.DER) != pck_ca.public_bytes(Encoding.DER):
                    raise _cerr("PCK CRL issuer chain does not name the quote's PCK CA")
            pck_crl = load_crl(collateral.pck_crl, reason=R_COLLATERAL)
            check_crl(
                pck_crl,
                pck_ca,
                [leaf],
                now=now,
                collateral_reason=R_COLLATERAL,
                expired_reason=R_EXPIRED,
                revoked_reason=R_REVOKED,
            )
        crls_checked = collateral.root_crl is not None and collateral.pck_crl is not None
    return VerifiedTdxCollateral(tcb_info=tcb_info, qe_identity=qe, crls_checked=crls_checked)


# ---------------------------------------------------------------------------------------------
# C5. Matching the quote against the collateral
# ---------------------------------------------------------------------------------------------


def _masked_equal(a: bytes, b: bytes, mask: bytes) -> bool:
    return len(a) == len(b) == len(mask) and all(
        (x & m) == (y & m) for x, y, m in zip(a, b, mask, strict=True)
    )


def qe_identity_status(
    identity: TdxQeIdentity,
    *,
    mrsigner: bytes,
    isvprodid: int,
    isvsvn: int,
    miscselect: int,
    attributes: bytes,
) -> tuple[str, QeIdentityLevel | None]:
    """Intel QVL 4.1.2.4.14-15: identity must match; ISVSVN selects the first level it meets.
    Returns (status, level); status "NotSupported" when ISVSVN is below every level."""
    if mrsigner != identity.mrsigner:
        raise TcbError("QE MRSIGNER does not match the QE identity", reason=R_TCB)
    if isvprodid != identity.isvprodid:
        raise TcbError("QE ISVPRODID does not match the QE identity", reason=R_TCB)
    if (miscselect & identity.miscselect_mask) != (identity.miscselect & identity.miscselect_mask):
        raise TcbError("QE MISCSELECT does not match the QE identity", reason=R_TCB)
    if not _masked_equal(attributes, identity.attributes, identity.attributes_mask):
        raise TcbError("QE ATTRIBUTES do not match the QE identity", reason=R_TCB)
    for level in identity.levels:
        if isvsvn >= level.isvsvn:
            return level.status, level
    return "NotSupported", None


def match_tcb_levels(
    levels: tuple[TdxTcbLevel, ...] | list[TdxTcbLevel], pck_tcb: PckTcb, tee_tcb_svn: bytes
) -> tuple[TdxTcbLevel | None, TdxTcbLevel | None]:
    """Intel QVL 4.1.2.4.17.1-3 (levels in the order Intel publishes them, highest first):
    the SGX level is the first whose 16 SGX component SVNs and PCESVN are all <= the PCK's;
    the TDX level is the first such level whose TDX component SVNs are all <= TEE_TCB_SVN,
    comparing from index 2 when TEE_TCB_SVN[1] (TDX module major version) > 0, because the
    module SVN is then judged by ``tdxModuleIdentities`` instead."""
    if len(tee_tcb_svn) != 16 or len(pck_tcb.comp_svns) != 16:
        raise TcbError("TCB SVN arrays must have 16 entries", reason=R_TCB)
    start = 2 if tee_tcb_svn[1] > 0 else 0
    sgx_level: TdxTcbLevel | None = None
    for level in levels:
        if all(p >= lv for p, lv in zip(pck_tcb.comp_svns, level.sgx_svns, strict=True)) and (
            pck_tcb.pcesvn >= level.pcesvn
        ):
            if sgx_level is None:
                sgx_level = level
            if all(tee_tcb_svn[i] >= level.tdx_svns[i] for i in range(start, 16)):
                return sgx_level, level
    return sgx_level, None


def _find_module_identity(info: TdxTcbInfo, version: int) -> TdxModuleIdentity | None:
    want = f"TDX_{version:02X}"
    for ident in info.tdx_module_identities:
        if ident.id.upper() == want:
            return ident
    return None


def tdx_module_identity_for(info: TdxTcbInfo, tee_tcb_svn: bytes) -> TdxModuleIdentity:
    """4.1.2.4.11: the module identity MRSIGNERSEAM/SEAMATTRIBUTES are checked against."""
    version = tee_tcb_svn[1]
    if version == 0:
        return info.tdx_module
    ident = _find_module_identity(info, version)
    if ident is None:
        raise TcbError(f"no TDX module identity TDX_{version:02X} in TCB Info", reason=R_TCB)
    return ident


def check_tdx_module(
    info: TdxTcbInfo, tee_tcb_svn: bytes, mr_signer_seam: bytes, seam_attributes: bytes
) -> None:
    ident = tdx_module_identity_for(info, tee_tcb_svn)
    if mr_signer_seam != ident.mrsigner:
        raise TcbError("MRSIGNERSEAM does not match the TDX module identity", reason=R_TCB)
    if not _masked_equal(seam_attributes, ident.attributes, ident.attributes_mask):
        raise TcbError("SEAMATTRIBUTES do not match the TDX module identity", reason=R_TCB)


def _module_status(info: TdxTcbInfo, tee_tcb_svn: bytes) -> tuple[str, TdxModuleLevel | None]:
    """4.1.2.4.17.4.1 (quote v4/v5): module version 0 -> UpToDate; else the identity
    ``TDX_%02X`` and the first of its levels whose isvsvn <= TEE_TCB_SVN[0]."""
    if tee_tcb_svn[1] == 0:
        return "UpToDate", None
    ident = tdx_module_identity_for(info, tee_tcb_svn)
    for level in ident.levels:
        if tee_tcb_svn[0] >= level.isvsvn:
            return level.status, level
    return "NotSupported", None


_CONFIG_NEEDED = frozenset(
    {
        "ConfigurationNeeded",
        "OutOfDateConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "TDRelaunchAdvisedConfigurationNeeded",
    }
)


def _converge_out_of_date(level_status: str) -> str | None:
    if level_status in ("UpToDate", "SWHardeningNeeded"):
        return "OutOfDate"
    if level_status in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
        return "OutOfDateConfigurationNeeded"
    return None


def _converge_module(level_status: str, module_status: str) -> str:
    if module_status == "OutOfDate":
        c = _converge_out_of_date(level_status)
        if c is not None:
            return c
    if module_status == "Revoked":
        return "Revoked"
    return level_status


def _converge_qe(level_status: str, qe_status: str) -> str:
    if qe_status == "OutOfDate":
        c = _converge_out_of_date(level_status)
        if c is not None:
            return c
    if qe_status == "Revoked":
        return "Revoked"
    if qe_status == "NotSupported":
        return "NotSupported"
    return level_status


def _relaunch(
    info: TdxTcbInfo,
    tee_tcb_svn2: bytes,
    sgx_status: str,
    tdx_status: str,
    module_status: str,
    qe_status: str | None,
) -> str:
    """4.1.2.4.17.4.3 (TDX 1.5 body): a TD whose module was updated in place (TD-preserving
    update) reports TEE_TCB_SVN2; if that already meets the latest level, advise relaunch."""
    if qe_status in ("OutOfDate", "Revoked", "NotSupported"):
        return tdx_status
    if sgx_status not in (
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
    ):
        return tdx_status
    if (
        tdx_status not in ("OutOfDate", "OutOfDateConfigurationNeeded")
        or module_status != "OutOfDate"
    ):
        return tdx_status
    latest = info.tcb_levels[0]
    if tee_tcb_svn2[1] == 0:
        ok = tee_tcb_svn2[0] >= latest.tdx_svns[0] and tee_tcb_svn2[2] >= latest.tdx_svns[2]
    else:
        ident2 = _find_module_identity(info, tee_tcb_svn2[1])
        if ident2 is None:
            raise TcbError(
                f"no TDX module identity TDX_{tee_tcb_svn2[1]:02X} in TCB Info", reason=R_TCB
            )
        if not ident2.levels:
            raise TcbError("TDX module identity has no TCB levels", reason=R_TCB)
        ok = tee_tcb_svn2[0] >= ident2.levels[0].isvsvn and tee_tcb_svn2[2] >= latest.tdx_svns[2]
    if not ok:
        return tdx_status
    if sgx_status in _CONFIG_NEEDED or tdx_status in _CONFIG_NEEDED:
        return "TDRelaunchAdvisedConfigurationNeeded"
    return "TDRelaunchAdvised"


def _merge(*groups: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        for a in g:
            if a not in out:
                out.append(a)
    return tuple(out)


def evaluate_tdx_tcb(
    info: TdxTcbInfo,
    pck_tcb: PckTcb,
    tee_tcb_svn: bytes,
    *,
    tee_tcb_svn2: bytes | None = None,
    qe_status: str | None = None,
    qe_level: QeIdentityLevel | None = None,
) -> TdxTcbEvaluation:
    """TDX TCB status (Intel QVL 4.1.2.4.17).  Raises ``attest.tdx.tcb_status`` when no level
    matches (or the module / QE is below every level), ``attest.tdx.revoked`` for Revoked."""
    sgx_level, tdx_level = match_tcb_levels(info.tcb_levels, pck_tcb, tee_tcb_svn)
    if sgx_level is None:
        raise TcbError("no matching TCB level (SGX components / PCESVN)", reason=R_TCB)
    if tdx_level is None:
        raise TcbError("no matching TCB level (TDX components)", reason=R_TCB)
    module_status, module_level = _module_status(info, tee_tcb_svn)
    if module_status == "NotSupported":
        raise TcbError("no matching TDX module TCB level", reason=R_TCB)
    status = _converge_module(tdx_level.status, module_status)
    if status == "Revoked":
        raise AttestationError("TDX TCB level is revoked", reason=R_REVOKED)
    if tee_tcb_svn2 is not None:
        status = _relaunch(info, tee_tcb_svn2, sgx_level.status, status, module_status, qe_status)
    if qe_status is not None:
        status = _converge_qe(status, qe_status)
    if status == "Revoked":
        raise AttestationError("TCB (QE identity) is revoked", reason=R_REVOKED)
    if status == "NotSupported":
        raise TcbError("no matching QE identity TCB level", reason=R_TCB)
    return TdxTcbEvaluation(
        status=status,
        tcb_date=tdx_level.tcb_date,
        advisory_ids=_merge(
            tdx_level.advisory_ids,
            module_level.advisory_ids if module_level else (),
            qe_level.advisory_ids if qe_level else (),
        ),
        sgx_level=sgx_level,
        tdx_level=tdx_level,
        tdx_module_status=module_status,
        qe_status=qe_status,
    )


# ---------------------------------------------------------------------------------------------
# Optional Intel PCS fetcher (off unless a caller constructs one and passes it in)
# ---------------------------------------------------------------------------------------------

HttpGet = Callable[[str], tuple[bytes, Mapping[str, str]]]


def _urllib_get(url: str) -> tuple[bytes, Mapping[str, str]]:
    return https_get(url, limit=_MAX_JSON * 4, timeout=30, error=_cerr)


class IntelPcsFetcher:
    """Fetches TDX collateral from Intel PCS (API v4) or a PCCS with the same API, and caches
    it in memory until the earliest ``nextUpdate``.  ``http_get(url) -> (body, headers)`` is
    injectable (tests, proxies, PCCS clients); the default uses urllib over HTTPS.  Fetched
    collateral is verified like any other; fetching adds no trust."""

    def __init__(
        self,
        *,
        http_get: HttpGet | None = None,
        base_url: str = "https://api.trustedservices.intel.com",
        root_crl_url: str = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
    ) -> None:
        self._get = http_get or _urllib_get
        self._base = base_url.rstrip("/")
        self._root_crl_url = root_crl_url
        self._cache: dict[tuple[bytes, str], tuple[datetime, TdxCollateral]] = {}
        self._lock = threading.Lock()


    def __repr__(self) -> str:
        return f"IntelPcsFetcher(base_url={self._base!r}, root_crl_url={self._root_crl_url!r})"

    def _fetch(self, url: str, header: str | None) -> tuple[bytes, bytes | None]:
        try:
            body, headers = self._get(url)
        except AttestationError:
            raise
        except Exception:
            raise _cerr("collateral fetch failed") from None
        chain: bytes | None = None
        if header is not None:
            lower = {k.lower(): v for k, v in headers.items()}
            value = lower.get(header.lower())
            if value is None:
                raise _cerr(f"PCS response lacks the {header} header")
            chain = urllib.parse.unquote(value).encode("ascii", "replace")
        return bytes(body), chain

    def collateral(self, fmspc: bytes, ca: str, *, now: datetime) -> TdxCollateral:
        if ca not in ("platform", "processor") or len(fmspc) != 6:
            raise _cerr("bad collateral request")
        key = (bytes(fmspc), ca)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now <= hit[0]:
                return hit[1]
        tcb, tcb_chain = self._fetch(
            f"{self._base}/tdx/certification/v4/tcb?fmspc={fmspc.hex()}", "TCB-Info-Issuer-Chain"
        )
        qe, qe_chain = self._fetch(
            f"{self._base}/tdx/certification/v4/qe/identity", "SGX-Enclave-Identity-Issuer-Chain"
        )
        pck_crl, pck_chain = self._fetch(
            f"{self._base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
            "SGX-PCK-CRL-Issuer-Chain",
        )
        root_crl, _ = self._fetch(self._root_crl_url, None)
        assert tcb_chain is not None
        col = TdxCollateral(
            tcb_info=tcb,
            tcb_info_issuer_chain=tcb_chain,
            qe_identity=qe,
            qe_identity_issuer_chain=qe_chain,
            pck_crl=pck_crl,
            root_crl=root_crl,
            pck_crl_issuer_chain=pck_chain,
        )
        try:
            expires = min(parse_tcb_info(tcb).next_update, parse_qe_identity(qe).next_update)
        except CollateralError:
            return col  # not cached; verification will report the problem
        with self._lock:
            self._cache[key] = (expires, col)
        return col


# ---------------------------------------------------------------------------------------------
# Collateral on disk (offline verifiers, the key service)
# ---------------------------------------------------------------------------------------------

#: File names of one collateral set, per :class:`TdxCollateral` field (first match wins).
#: ``pck_crl_platform.*`` / ``pck_crl_processor.*`` are preferred over ``pck_crl.*`` for
#: quotes whose PCK certificate comes from that CA.
COLLATERAL_FILES: dict[str, tuple[str, ...]] = {
    "tcb_info": ("tcb_info.json",),
    "tcb_info_issuer_chain": ("tcb_info_issuer_chain.pem",),
    "qe_identity": ("qe_identity.json",),
    "qe_identity_issuer_chain": ("qe_identity_issuer_chain.pem",),
    "pck_crl": ("pck_crl.der", "pck_crl.pem"),
    "root_crl": ("root_crl.der", "root_crl.pem"),
    "pck_crl_issuer_chain": ("pck_crl_issuer_chain.pem",),
}
_MAX_COLLATERAL_FILE = 4 << 20


def load_tdx_collateral_dir(directory: str | os.PathLike[str], *, partial: bool = False,
                            ca: str | None = None) -> TdxCollateral:
    """One collateral set from a directory: ``tcb_info.json`` + ``tcb_info_issuer_chain.pem``
    (always), ``qe_identity.json`` + ``qe_identity_issuer_chain.pem``, ``pck_crl.{der,pem}``
    (or ``pck_crl_<ca>.{der,pem}``), ``root_crl.{der,pem}``, ``pck_crl_issuer_chain.pem``
    (required at verification unless ``partial``).  Files are read as they are now; nothing is
    trusted because it is on disk (:func:`verify_tdx_collateral` checks everything)."""
    d = Path(directory)
    found: dict[str, bytes] = {}
    for name, files in COLLATERAL_FILES.items():
        if name == "pck_crl" and ca in ("platform", "processor"):
            files = (f"pck_crl_{ca}.der", f"pck_crl_{ca}.pem", *files)
        for fname in files:
            p = d / fname
            if p.is_file():
                found[name] = read_limited(p, _MAX_COLLATERAL_FILE, what="collateral", error=_cerr)
                break
    if "tcb_info" not in found or "tcb_info_issuer_chain" not in found:
        raise _cerr(f"{d} needs tcb_info.json and tcb_info_issuer_chain.pem")
    return TdxCollateral(allow_partial=partial, **found)


class TdxCollateralDir:
    """Collateral for a fleet of TDX platforms, kept on disk by the operator (e.g. a job that
    mirrors Intel PCS or a PCCS): one subdirectory per FMSPC, named by its 12 lower-case hex
    digits, each holding one set in the :func:`load_tdx_collateral_dir` layout::

        tdx-collateral/50806f000000/{tcb_info.json, tcb_info_issuer_chain.pem, qe_identity.json, ...}

    Pass it to ``verify_tdx(..., fetcher=...)`` (or the key service's
    ``attestation.tdx_collateral_dir``): each quote is appraised with the set for its own
    FMSPC, read afresh on every call, so replacing the files takes effect at once.  A platform
    without a set is an error (``attest.tdx.collateral``), never a silent pass."""

    def __init__(self, root: str | os.PathLike[str], *, allow_partial: bool = False) -> None:
        self.root = Path(root)
        self.allow_partial = allow_partial
        if not self.root.is_dir():
            raise _cerr(f"TDX collateral directory {self.root} does not exist")

    def __repr__(self) -> str:
        return f"TdxCollateralDir({str(self.root)!r}, allow_partial={self.allow_partial})"

    def platforms(self) -> list[str]:
        """The FMSPCs (hex) that have a collateral set."""
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _FMSPC_DIR.fullmatch(p.name))
        except OSError as exc:
            raise _cerr(f"cannot list {self.root} ({exc.strerror})") from None

    def next_updates(self) -> dict[tuple[str, str], datetime | None]:
        """``{(fmspc, "tcb_info" | "qe_identity"): nextUpdate}`` as the files say (not
        verified: for monitoring, so a set is renewed before verification starts refusing it);
        None where the document is missing or unreadable."""
        out: dict[tuple[str, str], datetime | None] = {}
        for fmspc in self.platforms():
            d = self.root / fmspc
            for doc, fname, parse in (("tcb_info", "tcb_info.json", parse_tcb_info),
                                      ("qe_identity", "qe_identity.json", parse_qe_identity)):
                try:
                    raw = read_limited(d / fname, _MAX_COLLATERAL_FILE, what="collateral", error=_cerr)
                    out[(fmspc, doc)] = parse(raw).next_update
                except AttestationError:
                    out[(fmspc, doc)] = None
        return out

    def collateral(self, fmspc: bytes, ca: str, *, now: datetime) -> TdxCollateral:
        if ca not in ("platform", "processor") or len(fmspc) != 6:
            raise _cerr("bad collateral request")
        d = self.root / bytes(fmspc).hex()
        if not d.is_dir():
            raise _cerr(f"no TDX collateral for FMSPC {bytes(fmspc).hex()} in {self.root}")
        return load_tdx_collateral_dir(d, partial=self.allow_partial, ca=ca)


_FMSPC_DIR = re.compile(r"[0-9a-f]{12}")
