"""The generic verifier front door and the evidence bundle file format.

``verify_evidence`` dispatches one :class:`Evidence` to its platform verifier and applies the
request binding; ``verify_bundle`` checks the shape of a whole request (exactly one CPU TEE
first, then GPUs).  Mock evidence is refused BEFORE its bytes are parsed unless the caller
passed ``allow_mock=True``.

Bundle file (JSON, UTF-8)::

    {"version": 1,
     "evidence": [{"platform": "snp", "report": "<base64>", "certs": "<base64>"}, ...]}

``certs`` may be omitted (empty).  Unknown keys, unknown versions, non-canonical base64 and
more than ``MAX_BUNDLE_ITEMS`` items are rejected with ``EvidenceParseError`` (``attest.bundle``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._binding import gpu_nonce
from ._claims import Claims, Evidence, GpuClaims, Platform
from ._errors import (
    AttestationError,
    BindingError,
    EvidenceParseError,
    MockNotAllowedError,
    UnsupportedEvidenceError,
)

__all__ = [
    "BUNDLE_VERSION",
    "MAX_BUNDLE_ITEMS",
    "verify_evidence",
    "verify_bundle",
    "dumps_bundle",
    "loads_bundle",
    "save_bundle",
    "load_bundle",
]

BUNDLE_VERSION = 1
MAX_BUNDLE_ITEMS = 17  # one CPU TEE + up to 16 GPUs
MAX_BUNDLE_BYTES = 16 << 20
_CPU = (Platform.SNP, Platform.TDX, Platform.MOCK)


def verify_evidence(
    evidence: Evidence,
    *,
    expected_report_data: bytes | None,
    allow_mock: bool = False,
    mock_keys: Collection[bytes] | None = None,
    now: _dt.datetime | None = None,
    tdx_collateral: Any = None,
    gpu_rims: Any = (),
    gpu_reference: Any = None,
    snp_kds: Any = None,
    expected_gpu_nonce: bytes | None = None,
    tdx_fetcher: Any = None,
    snp_crl: Any = None,
    gpu_ocsp: Any = None,
) -> Claims:
    """Verify one piece of evidence and return its claims, or raise an ``AttestationError``.

    ``expected_report_data``: the 64-byte binding value (``report_data(nonce, model_id, key)``);
    ``None`` skips the binding check (only for inspecting evidence, never for releasing keys).
    For GPU evidence the expected SPDM nonce is ``gpu_nonce(expected_report_data)``.
    ``expected_gpu_nonce`` checks standalone GPU evidence against a raw 32-byte nonce instead
    (used by ``weightseal attest verify --gpu-nonce``); it cannot be combined with
    ``expected_report_data``.  Collateral: ``tdx_collateral`` (one set) or ``tdx_fetcher`` (a
    ``TdxCollateralDir`` or ``IntelPcsFetcher``, asked for the quote's FMSPC); ``gpu_rims`` (the
    two RIMs, or a ``RimStore`` / ``NvidiaRimService`` to get them from); ``gpu_reference``; ``snp_kds``;
    ``snp_crl`` (an ``SnpCrlSource``: ``SnpCrlDir``, ``SnpCrlFile`` or a ``KdsClient``);
    ``gpu_ocsp`` (an ``NvidiaOcsp``: the GPUs' device chains checked for revocation).
    """
    if not isinstance(evidence, Evidence):
        raise UnsupportedEvidenceError("not an Evidence object", reason="attest.unsupported")
    plat = evidence.platform
    # 1. The mock is refused before a single byte of it is parsed.
    if plat is Platform.MOCK and not allow_mock:
        raise MockNotAllowedError(
            "mock evidence offered but the mock platform is not enabled (development flag)",
            reason="attest.mock.not_allowed")
    if expected_report_data is not None and len(expected_report_data) != 64:
        raise BindingError("expected report_data must be 64 bytes", reason="attest.binding")
    if expected_gpu_nonce is not None and (expected_report_data is not None or plat is not Platform.NVGPU):
        raise BindingError("a raw GPU nonce applies to standalone GPU evidence only", reason="attest.binding")
    # 2. Dispatch.  Verifier modules are imported lazily: importing the package stays cheap.
    if plat is Platform.MOCK:
        from ._mock import verify_mock

        return verify_mock(evidence.report, expected_report_data=expected_report_data, trusted_keys=mock_keys)
    if plat is Platform.SNP:
        from ._snp import verify_snp

        return verify_snp(evidence.report, evidence.certs, now=now, expected_report_data=expected_report_data, kds=snp_kds,
                          crl=snp_crl)
    if plat is Platform.TDX:
        from ._tdx import verify_tdx

        return verify_tdx(evidence.report, now=now, expected_report_data=expected_report_data, collateral=tdx_collateral,
                          fetcher=tdx_fetcher)
    if plat is Platform.NVGPU:
        from ._nvgpu import verify_gpu

        nonce = gpu_nonce(expected_report_data) if expected_report_data is not None else expected_gpu_nonce
        return verify_gpu(evidence.report, evidence.certs, now=now, expected_nonce=nonce,
                          rims=gpu_rims if hasattr(gpu_rims, "rims_for") else tuple(gpu_rims or ()),
                          reference=gpu_reference, ocsp=gpu_ocsp)
    raise UnsupportedEvidenceError(f"unsupported platform {plat!r}", reason="attest.unsupported")  # pragma: no cover


def verify_bundle(
    evidences: Sequence[Evidence],
    expected_report_data: bytes | None,
    *,
    allow_mock: bool = False,
    mock_keys: Collection[bytes] | None = None,
    now: _dt.datetime | None = None,
    tdx_collateral: Any = None,
    gpu_rims: Any = (),
    gpu_reference: Any = None,
    snp_kds: Any = None,
    tdx_fetcher: Any = None,
    snp_crl: Any = None,
    gpu_ocsp: Any = None,
) -> list[Claims]:
    """Verify a request's evidence: exactly one CPU TEE (snp/tdx/mock) first, then 0..n GPUs,
    all bound to ``expected_report_data``.  The same GPU twice is rejected (``attest.bundle``)."""
    evs = list(evidences)
    if not evs:
        raise AttestationError("no evidence", reason="attest.bundle")
    if len(evs) > MAX_BUNDLE_ITEMS:
        raise AttestationError(f"too many evidence items ({len(evs)})", reason="attest.bundle")
    if evs[0].platform not in _CPU:
        raise AttestationError("the first evidence must be a CPU TEE (snp, tdx or mock)", reason="attest.bundle")
    if any(e.platform is not Platform.NVGPU for e in evs[1:]):
        raise AttestationError("only GPU evidence may follow the CPU TEE evidence", reason="attest.bundle")
    # Refuse mock before verifying (or parsing) anything.
    if evs[0].platform is Platform.MOCK and not allow_mock:
        raise MockNotAllowedError("mock evidence offered but the mock platform is not enabled",
                                  reason="attest.mock.not_allowed")
    out: list[Claims] = []
    serials: set[str] = set()
    for ev in evs:
        claims = verify_evidence(ev, expected_report_data=expected_report_data, allow_mock=allow_mock,
                                 mock_keys=mock_keys, now=now, tdx_collateral=tdx_collateral, gpu_rims=gpu_rims,
                                 gpu_reference=gpu_reference, snp_kds=snp_kds, tdx_fetcher=tdx_fetcher,
                                 snp_crl=snp_crl, gpu_ocsp=gpu_ocsp)
        if isinstance(claims, GpuClaims):
            if claims.ak_serial in serials:
                raise AttestationError("the same GPU appears twice", reason="attest.bundle")
            serials.add(claims.ak_serial)
        out.append(claims)
    return out


# ---------------------------------------------------------------------------------------------
# bundle file


def _bundle_fail(msg: str) -> NoReturn:
    raise EvidenceParseError(msg, reason="attest.bundle")


def _b64(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        _bundle_fail(f"{where} must be a base64 string")
    try:
        raw = base64.b64decode(v.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        _bundle_fail(f"{where} is not valid base64")
    if base64.b64encode(raw).decode("ascii") != v:
        _bundle_fail(f"{where} is not canonical base64")
    return raw


def dumps_bundle(evidences: Iterable[Evidence]) -> bytes:
    items = []
    for ev in evidences:
        item = {"platform": ev.platform.value, "report": base64.b64encode(ev.report).decode("ascii")}
        if ev.certs:
            item["certs"] = base64.b64encode(ev.certs).decode("ascii")
        items.append(item)
    if not items or len(items) > MAX_BUNDLE_ITEMS:
        _bundle_fail(f"a bundle holds 1..{MAX_BUNDLE_ITEMS} evidence items")
    return (json.dumps({"version": BUNDLE_VERSION, "evidence": items}, indent=1) + "\n").encode("ascii")


def loads_bundle(data: bytes | str) -> list[Evidence]:
    """Parse a bundle strictly.  Raises only ``EvidenceParseError(reason="attest.bundle")``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BUNDLE_BYTES:
        _bundle_fail("bundle too large")

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in pairs:
            if k in d:
                _bundle_fail(f"duplicate key {k!r}")
            d[k] = v
        return d

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=no_dupes)
    except EvidenceParseError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        _bundle_fail("bundle is not valid JSON")
    if not isinstance(doc, dict) or set(doc) != {"version", "evidence"}:
        _bundle_fail("bundle must be an object with exactly 'version' and 'evidence'")
    if doc["version"] != BUNDLE_VERSION or isinstance(doc["version"], bool):
        _bundle_fail(f"unsupported bundle version {doc['version']!r}")
    items = doc["evidence"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BUNDLE_ITEMS:
        _bundle_fail(f"'evidence' must be a list of 1..{MAX_BUNDLE_ITEMS} items")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"platform", "report"} <= set(item) <= {"platform", "report", "certs"}:
            _bundle_fail(f"evidence[{i}] must have 'platform', 'report' and optionally 'certs'")
        plat = item["platform"]
        if not isinstance(plat, str) or plat not in {p.value for p in Platform}:
            _bundle_fail(f"evidence[{i}].platform must be one of snp, tdx, nvgpu, mock")
        report = _b64(item["report"], f"evidence[{i}].report")
        if not report:
            _bundle_fail(f"evidence[{i}].report is empty")
        certs = _b64(item.get("certs", ""), f"evidence[{i}].certs")
        out.append(Evidence(platform=Platform(plat), report=report, certs=certs))
    return out


def save_bundle(path: str | os.PathLike[str], evidences: Iterable[Evidence]) -> None:
    Path(path).write_bytes(dumps_bundle(evidences))


def load_bundle(path: str | os.PathLike[str]) -> list[Evidence]:
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise EvidenceParseError(f"cannot read bundle {path}: {exc.strerror}", reason="attest.bundle") from exc
    return loads_bundle(data)
