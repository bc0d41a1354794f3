"""The attested key-release decision (DESIGN.md "Key release protocol", step 5), without gRPC.

``KeyReleaser.release`` runs, in this order (each step's failure is a denial with a stable
reason code, audited, and no key):

 1. Request shape: model id, HPKE suite and public key, 1..17 evidence items, sizes
    (``request.invalid``, ``model.invalid_id``, ``hpke.suite``, ``hpke.public_key``).
 2. Nonce: MAC, model, expiry, first use on this replica (``nonce.*``); spent even if a later
    step denies, so a denied request cannot be retried with the same nonce.
 3. Model record from the registry (``model.not_found``, ``model.revoked``); the model version
    (0 = latest not retired) must exist and not be retired (``policy.model_version``).
 4. Mock gate: mock evidence only when the service runs in development mode AND the model's
    policy names the mock platform (``attest.mock.not_allowed``); production refuses it whatever
    the policy says.
 5. Evidence: ``verify_bundle`` against ``report_data(nonce, model_id, hpke_public_key)``: vendor
    chains, signatures and the binding (``attest.<platform>.<check>``).
 6. Policy: ``evaluate`` (``policy.<rule>``).
 7. Unwrap the DEK through Vault (``vault.unavailable`` -> UNAVAILABLE).  The plaintext DEK now
    exists only in this process, in a bytearray.
 8. Audit: the grant record is appended and fsync'd (``audit.unwritable``: DEK wiped, no key).
    The DEK is unwrapped before the grant is written so that the audit log holds exactly one
    record per request with its final decision (a Vault failure is a denial, not a grant
    followed by a denial); the key still cannot leave without its record.
 9. Seal: HPKE to the requester's key with ``info`` binding suite, model id, version, nonce,
    policy digest and the recipient key; the payload carries the audit record hash; Ed25519
    signature over RESPONSE_DOMAIN || payload.  The DEK bytearray is overwritten.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import nacl.signing
from weightseal.attest._binding import report_data
from weightseal.attest._claims import (
    Claims,
    Evidence,
    GpuClaims,
    MockClaims,
    Platform,
    SnpClaims,
    TdxClaims,
)
from weightseal.attest._errors import (
    AttestationError,
    MockNotAllowedError,
    PolicyDenied,
    WeightsealError,
)
from weightseal.attest._policy import Policy, evaluate
from weightseal.attest._verify import MAX_BUNDLE_ITEMS, verify_bundle
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb

from ._errors import (
    AuditError,
    KmsError,
    ModelNotFoundError,
    ModelRevokedError,
    VaultUnavailableError,
)
from ._nonce import NonceService
from ._vault import MODEL_ID_RE

__all__ = ["CallerInfo", "KeyReleaser", "AttestationOptions", "RequestError", "evidence_digest", "key_id_of"]

log = logging.getLogger("weightseal.kms.release")

MAX_REPORT_BYTES = 256 * 1024
MAX_CERTS_BYTES = 256 * 1024


class RequestError(KmsError):
    """The request is malformed (INVALID_ARGUMENT)."""

    default_reason = "request.invalid"


@dataclass(frozen=True)
class CallerInfo:
    """Who is calling: mTLS identity (None for anonymous TEEs) and peer address."""

    identity: str | None
    address: str


@dataclass(frozen=True)
class AttestationOptions:
    """Collateral and trust anchors handed to the verifiers."""

    mock_keys: Collection[bytes] | None = None
    tdx_collateral: Any = None  # one TdxCollateral for every quote (tests, single platform)
    tdx_fetcher: Any = None  # TdxCollateralDir / IntelPcsFetcher: the set for each quote's FMSPC
    gpu_rims: Any = ()  # the two RIMs, or a RimStore
    gpu_reference: Any = None
    snp_kds: Any = None
    snp_crl: Any = None  # SnpCrlDir / KdsClient: ARK CRLs (revocation of the ASK/ASVK)
    gpu_ocsp: Any = None  # NvidiaOcsp: revocation of the GPUs' device chains


class _Audit(Protocol):
    def append(self, event: dict[str, Any]) -> Any: ...


class _Metrics(Protocol):
    def observe_release(self, decision: str, reason: str, seconds: float) -> None: ...
    def vault_error(self) -> None: ...


def key_id_of(wrapped: str) -> str:
    """``vault:vN`` of a ``vault:vN:...`` wrapped DEK (never any ciphertext)."""
    parts = wrapped.split(":", 2)
    return f"{parts[0]}:{parts[1]}" if len(parts) == 3 else "unknown"


def key_version_of(wrapped: str) -> int | None:
    kid = key_id_of(wrapped)
    return int(kid[7:]) if kid.startswith("vault:v") and kid[7:].isdigit() else None


def evidence_digest(evidence: Sequence[pb.Evidence]) -> str:
    """sha256 over the length-prefixed deterministic serialization of each evidence message."""
    h = hashlib.sha256(b"weightseal/v1/evidence-list")
    for ev in evidence:
        raw = ev.SerializeToString(deterministic=True)
        h.update(len(raw).to_bytes(4, "big") + raw)
    return "sha256:" + h.hexdigest()


def claims_summary(claims: Sequence[Claims]) -> list[dict[str, Any]]:
    """The deciding claims for the audit log (never report_data-derived secrets: there are none)."""
    out: list[dict[str, Any]] = []
    for c in claims:
        if isinstance(c, SnpClaims):
            out.append({"platform": "snp", "measurement": c.measurement.hex(), "chip_id": None if c.mask_chip_id else c.chip_id.hex(),
                        "reported_tcb": f"0x{c.reported_tcb.raw:016x}", "debug": c.debug, "vmpl": c.vmpl,
                        "signing_key": c.signing_key, "product": c.product, "crl_checked": c.crl_checked})
        elif isinstance(c, TdxClaims):
            out.append({"platform": "tdx", "mrtd": c.mr_td.hex(), "rtmrs": [r.hex() for r in c.rtmrs],
                        "tee_tcb_svn": c.tee_tcb_svn.hex(), "debug": c.debug, "fmspc": c.fmspc.hex(),
                        "tcb_status": c.tcb_status})
        elif isinstance(c, MockClaims):
            out.append({"platform": "mock", "measurement": c.measurement.hex(), "tcb": c.tcb, "debug": c.debug,
                        "platform_key_id": c.platform_key.hex()})
        elif isinstance(c, GpuClaims):
            out.append({"platform": "nvgpu", "ak_serial": c.ak_serial, "driver_version": c.driver_version,
                        "vbios_version": c.vbios_version, "cc_enabled": c.cc_enabled, "ocsp_checked": c.ocsp_checked})
    return out


def audit_hash_of(record: Any) -> str:
    """The own-hash of an audit record returned by ``AuditLog.append``."""
    if isinstance(record, dict):
        for k in ("hash", "record_hash", "own_hash"):
            v = record.get(k)
            if isinstance(v, str):
                return v
    for k in ("hash", "record_hash"):
        v = getattr(record, k, None)
        if isinstance(v, str):
            return v
    raise AuditError("audit log returned no record hash", reason="audit.unwritable")


@dataclass
class _Ctx:
    """What we learned about a request so far (for the audit record of its decision)."""

    model_id: str
    model_version: int = 0
    key_id: str | None = None
    key_version: int | None = None
    policy_digest: str | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)


class KeyReleaser:
    """Challenge and release, independent of the transport."""

    def __init__(
        self,
        *,
        registry: Any,
        vault: Any,
        audit: _Audit,
        nonces: NonceService,
        signing_key: nacl.signing.SigningKey,
        dev_mode: bool = False,
        attestation: AttestationOptions | None = None,
        metrics: _Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._vault = vault
        self._audit = audit
        self._nonces = nonces
        self._signing_key = signing_key
        self.service_public_key = bytes(signing_key.verify_key)
        self.service_key_id = rc.service_key_id(self.service_public_key)
        self.dev_mode = bool(dev_mode)
        self._att = attestation or AttestationOptions()
        self._metrics = metrics
        self._clock = clock
        self._policy_cache: dict[str, Policy] = {}
        self._policy_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyReleaser(service_key_id={self.service_key_id!r}, dev_mode={self.dev_mode})"

    def __reduce__(self) -> Any:
        raise TypeError("KeyReleaser holds the service signing key and cannot be pickled")

    # -- challenge ------------------------------------------------------------------------------
    def challenge(self, model_id: str, caller: CallerInfo) -> tuple[bytes, int]:
        if not isinstance(model_id, str) or MODEL_ID_RE.fullmatch(model_id) is None:
            raise RequestError("invalid model id", reason="model.invalid_id")
        nonce, expires = self._nonces.issue(model_id)
        self._audit.append({
            "kind": "challenge",
            "decision": "issued",
            "reason": "ok",
            "caller": caller.identity,
            "caller_addr": caller.address,
            "model": model_id,
            "nonce_id": hashlib.sha256(nonce).hexdigest()[:32],
            "expires_at_ms": expires,
        })
        return nonce, expires

    # -- release --------------------------------------------------------------------------------
    def release(self, req: pb.ReleaseKeyRequest, caller: CallerInfo) -> pb.ReleaseKeyResponse:
        t0 = time.perf_counter()
        ctx = _Ctx(model_id=req.model_id if isinstance(req.model_id, str) else "")
        try:
            resp = self._release(req, caller, ctx)
        except WeightsealError as exc:
            if isinstance(exc, VaultUnavailableError) and self._metrics is not None:
                self._metrics.vault_error()
            self._deny(req, caller, ctx, exc)
            self._observe("deny", exc.reason, t0)
            raise
        except Exception as exc:  # a bug: still deny, audited, with a generic reason
            log.exception("unexpected error in key release")
            err = KmsError("internal error", reason="internal")
            self._deny(req, caller, ctx, err)
            self._observe("deny", err.reason, t0)
            raise err from exc
        self._observe("grant", "ok", t0)
        return resp

    def _observe(self, decision: str, reason: str, t0: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_release(decision, reason, time.perf_counter() - t0)

    def _deny(self, req: pb.ReleaseKeyRequest, caller: CallerInfo, ctx: _Ctx, exc: WeightsealError) -> None:
        if isinstance(exc, AuditError):
            return  # the log is what failed; the denial is logged below
        event = self._event(req, caller, ctx, "deny", exc.reason)
        if isinstance(exc, PolicyDenied) and exc.rule:
            event["rule"] = exc.rule
        try:
            self._audit.append(event)
        except Exception as aexc:  # noqa: BLE001 - the denial stands either way
            log.error("audit append failed for a denial (%s): %s", exc.reason, getattr(aexc, "reason", type(aexc).__name__))
        log.info("release denied", extra={"event": "release", "decision": "deny", "reason": exc.reason,
                                          "model": ctx.model_id, "caller": caller.identity, "address": caller.address})

    def _event(self, req: pb.ReleaseKeyRequest, caller: CallerInfo, ctx: _Ctx, decision: str, reason: str) -> dict[str, Any]:
        return {
            "kind": decision,
            "decision": decision,
            "reason": reason,
            "caller": caller.identity,
            "caller_addr": caller.address,
            "model": ctx.model_id[:256],
            "model_version": ctx.model_version,
            "key_version": ctx.key_version,
            "policy_digest": ctx.policy_digest,
            "evidence_digest": evidence_digest(req.evidence),
            "hpke_suite": req.hpke_suite or rc.DEFAULT_SUITE,
            "nonce_id": hashlib.sha256(bytes(req.nonce)).hexdigest()[:32],
            "claims": ctx.claims,
        }

    def _policy(self, policy_json: str) -> Policy:
        with self._policy_lock:
            pol = self._policy_cache.get(policy_json)
        if pol is None:
            pol = Policy.loads(policy_json)
            with self._policy_lock:
                if len(self._policy_cache) > 1024:
                    self._policy_cache.clear()
                self._policy_cache[policy_json] = pol
        return pol

    def _release(self, req: pb.ReleaseKeyRequest, caller: CallerInfo, ctx: _Ctx) -> pb.ReleaseKeyResponse:
        # 1. request shape
        model_id = req.model_id
        if MODEL_ID_RE.fullmatch(model_id) is None:
            raise RequestError("invalid model id", reason="model.invalid_id")
        suite = req.hpke_suite or rc.DEFAULT_SUITE
        try:
            rc.check_public_key(suite, req.hpke_public_key)
        except rc.ReleaseVerificationError as exc:
            raise RequestError(str(exc), reason=exc.reason) from None
        if not 1 <= len(req.evidence) <= MAX_BUNDLE_ITEMS:
            raise RequestError(f"expected 1..{MAX_BUNDLE_ITEMS} evidence items", reason="request.invalid")
        evidences: list[Evidence] = []
        for ev in req.evidence:
            if len(ev.report) > MAX_REPORT_BYTES or len(ev.certs) > MAX_CERTS_BYTES:
                raise RequestError("evidence too large", reason="request.invalid")
            try:
                plat = Platform(ev.platform)
            except ValueError:
                raise AttestationError("unknown evidence platform", reason="attest.unsupported") from None
            evidences.append(Evidence(platform=plat, report=bytes(ev.report), certs=bytes(ev.certs)))
        # 2. nonce
        nonce = bytes(req.nonce)
        self._nonces.check(nonce, model_id)
        # 3. model record and version
        record = self._registry.get(model_id)
        if record is None:
            raise ModelNotFoundError("no such model", reason="model.not_found")
        if record.revoked:
            raise ModelRevokedError("model is revoked", reason="model.revoked")
        version = int(req.model_version)
        if version == 0:
            live = [v for v, vr in record.versions.items() if not vr.retired]
            if not live:
                raise PolicyDenied("model has no releasable version", reason="policy.model_version", rule="model_versions")
            version = max(live)
        ctx.model_version = version
        vrec = record.versions.get(version)
        if vrec is None or vrec.retired:
            raise PolicyDenied(f"model version {version} is retired or unknown", reason="policy.model_version",
                               rule="registry.retired")
        ctx.key_id = key_id_of(vrec.wrapped_dek)
        ctx.key_version = key_version_of(vrec.wrapped_dek)
        policy = self._policy(record.policy_json)
        ctx.policy_digest = policy.digest
        # 4. mock gate
        allow_mock = self.dev_mode and policy.allows_mock
        if any(e.platform is Platform.MOCK for e in evidences) and not allow_mock:
            why = "the policy does not name the mock platform" if self.dev_mode else "production mode refuses mock evidence"
            raise MockNotAllowedError(why, reason="attest.mock.not_allowed")
        # 5. evidence, bound to this request
        rd = report_data(nonce, model_id, bytes(req.hpke_public_key))
        now = _dt.datetime.fromtimestamp(self._clock(), tz=_dt.UTC)
        claims = verify_bundle(
            evidences, rd, allow_mock=allow_mock, mock_keys=self._att.mock_keys, now=now,
            tdx_collateral=self._att.tdx_collateral, tdx_fetcher=self._att.tdx_fetcher,
            gpu_rims=self._att.gpu_rims, gpu_reference=self._att.gpu_reference, snp_kds=self._att.snp_kds,
            snp_crl=self._att.snp_crl, gpu_ocsp=self._att.gpu_ocsp)
        ctx.claims = claims_summary(claims)
        # 6. policy
        decision = evaluate(policy, claims, model_version=version, allow_mock=allow_mock)
        # 7. unwrap
        dek = self._vault.unwrap_dek(model_id, vrec.wrapped_dek)
        try:
            # 8. audit (fail closed)
            event = self._event(req, caller, ctx, "grant", "ok")
            event["decision_detail"] = {"profile_index": decision.profile_index, "profile_name": decision.profile_name,
                                        "measurement": decision.measurement, "chip_id": decision.chip_id,
                                        "tcb": decision.tcb}
            try:
                record_out = self._audit.append(event)
                audit_hash = audit_hash_of(record_out)
            except AuditError:
                raise
            except Exception as exc:
                raise AuditError("audit log unwritable", reason="audit.unwritable") from exc
            # 9. seal and sign
            issued = int(self._clock() * 1000)
            info = rc.release_info(suite=suite, model_id=model_id, model_version=version, nonce=nonce,
                                   policy_digest=policy.digest, public_key=bytes(req.hpke_public_key))
            enc, ct = rc.hpke_seal(suite, bytes(req.hpke_public_key), dek, info)
        finally:
            dek[:] = bytes(len(dek))
        payload = pb.ReleasePayload(
            model_id=model_id, model_version=version, nonce=nonce, policy_digest=policy.digest, hpke_suite=suite,
            enc=enc, ciphertext=ct, audit_hash=audit_hash, issued_at_ms=issued, key_id=ctx.key_id,
            hpke_public_key=bytes(req.hpke_public_key),
        ).SerializeToString(deterministic=True)
        sig = rc.sign_payload(self._signing_key, payload)
        log.info("release granted", extra={"event": "release", "decision": "grant", "model": model_id,
                                           "model_version": version, "caller": caller.identity, "address": caller.address})
        return pb.ReleaseKeyResponse(payload=payload, signature=sig, service_key_id=self.service_key_id)
