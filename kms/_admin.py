"""Model administration (register, policy, versions, rotation, retirement, revocation) and the
audit reader, without gRPC.

Authorization: every call carries the caller's authenticated identity (mTLS client certificate
SAN URI or subject CN).  A model belongs to the identity that registered it; only that owner may
change it (policy, versions, rotation, retirement) or read it.  Identities listed as admins
(security team) may read every model and the audit log, and may revoke any model (an emergency
stop); they may not change an owner's policy or mint DEKs.  Anything else is ``auth.forbidden``;
no identity is ``auth.unauthenticated``.  Every change, and every refused change, is audited.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections import deque
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

from weightseal.attest._errors import WeightsealError
from weightseal.attest._policy import Policy
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb

from ._audit import AuditRecord, iter_records
from ._errors import AuthError, KmsError, ModelRevokedError, PermissionDeniedError
from ._registry import ModelRecord, Registry, VersionRecord, utc_now
from ._release import CallerInfo, RequestError, key_id_of, key_version_of
from ._vault import validate_model_id

__all__ = ["ModelAdministrator", "AuditReader", "summary_of"]

log = logging.getLogger("weightseal.kms.admin")
T = TypeVar("T")
MAX_TAIL = 10_000


def _ms(ts: str) -> int:
    try:
        d = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return int(d.timestamp() * 1000)


def summary_of(rec: ModelRecord) -> pb.ModelSummary:
    return pb.ModelSummary(
        model_id=rec.model_id,
        owner=rec.owner,
        policy_digest=rec.policy_digest,
        policy_version=rec.policy_version,
        policy_json=rec.policy_json,
        versions=[pb.VersionSummary(version=v, created_at_ms=_ms(vr.created_at), retired=vr.retired,
                                    key_id=key_id_of(vr.wrapped_dek))
                  for v, vr in sorted(rec.versions.items())],
        latest_version=rec.latest_version,
        revoked=rec.revoked,
        created_at_ms=_ms(rec.created_at),
        updated_at_ms=_ms(rec.updated_at),
    )


class ModelAdministrator:
    def __init__(self, *, registry: Registry, vault: Any, audit: Any, admins: Collection[str] = ()) -> None:
        self._registry = registry
        self._vault = vault
        self._audit = audit
        self.admins = frozenset(admins)

    # -- helpers --------------------------------------------------------------------------------
    def _ident(self, caller: CallerInfo) -> str:
        if not caller.identity:
            raise AuthError("a client certificate is required", reason="auth.unauthenticated")
        return caller.identity

    def _audit_event(self, op: str, caller: CallerInfo, model_id: str, decision: str, reason: str, **extra: Any) -> None:
        self._audit.append({"kind": "admin", "op": op, "decision": decision, "reason": reason,
                            "caller": caller.identity, "caller_addr": caller.address,
                            "model": str(model_id)[:256], **extra})

    def _run(self, op: str, caller: CallerInfo, model_id: str, fn: Callable[[], tuple[T, dict[str, Any]]]) -> T:
        try:
            result, extra = fn()
        except WeightsealError as exc:
            try:
                self._audit_event(op, caller, model_id, "deny", exc.reason)
            except Exception:  # noqa: BLE001 - the refusal stands
                log.error("audit append failed for a refused admin call")
            raise
        self._audit_event(op, caller, model_id, "ok", "ok", **extra)
        return result

    def _owned(self, caller: CallerInfo, model_id: str, *, admin_ok: bool = False) -> ModelRecord:
        ident = self._ident(caller)
        validate_model_id(model_id)
        rec = self._registry.get(model_id)
        if rec.owner != ident and not (admin_ok and ident in self.admins):
            raise PermissionDeniedError("this model belongs to another owner", reason="auth.forbidden")
        return rec

    def _modify(self, caller: CallerInfo, model_id: str, change: Callable[[ModelRecord], None], *,
                admin_ok: bool = False, retries: int = 3) -> ModelRecord:
        for attempt in range(retries):
            rec = self._owned(caller, model_id, admin_ok=admin_ok)
            change(rec)
            try:
                return self._registry.update(rec)
            except KmsError as exc:
                if exc.reason != "registry.conflict" or attempt == retries - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- operations -----------------------------------------------------------------------------
    def register(self, caller: CallerInfo, model_id: str, policy_json: str) -> pb.ModelSummary:
        def go() -> tuple[pb.ModelSummary, dict[str, Any]]:
            ident = self._ident(caller)
            validate_model_id(model_id)
            policy = Policy.loads(policy_json)
            self._vault.ensure_model_key(model_id)
            rec = ModelRecord(model_id=model_id, owner=ident, policy_json=policy.canonical_json().decode("utf-8"),
                              policy_digest=policy.digest, policy_version=1, versions={}, latest_version=0)
            self._registry.create(rec)
            return summary_of(rec), {"policy_digest": policy.digest, "policy_version": 1}

        return self._run("register", caller, model_id, go)

    def get(self, caller: CallerInfo, model_id: str) -> pb.ModelSummary:
        return summary_of(self._owned(caller, model_id, admin_ok=True))

    def list(self, caller: CallerInfo) -> pb.ListModelsResponse:  # noqa: A003
        ident = self._ident(caller)
        recs = self._registry.list(None if ident in self.admins else ident)
        return pb.ListModelsResponse(models=[summary_of(r) for r in recs])

    def set_policy(self, caller: CallerInfo, model_id: str, policy_json: str, expected_policy_version: int) -> pb.ModelSummary:
        def go() -> tuple[pb.ModelSummary, dict[str, Any]]:
            policy = Policy.loads(policy_json)

            def change(rec: ModelRecord) -> None:
                if expected_policy_version and rec.policy_version != expected_policy_version:
                    raise KmsError(f"policy is at version {rec.policy_version}, not {expected_policy_version}",
                                   reason="registry.conflict")
                rec.policy_json = policy.canonical_json().decode("utf-8")
                rec.policy_digest = policy.digest
                rec.policy_version += 1

            rec = self._modify(caller, model_id, change)
            return summary_of(rec), {"policy_digest": rec.policy_digest, "policy_version": rec.policy_version}

        return self._run("set_policy", caller, model_id, go)

    def create_version(self, caller: CallerInfo, model_id: str, suite: str, owner_public_key: bytes) -> pb.CreateVersionResponse:
        def go() -> tuple[pb.CreateVersionResponse, dict[str, Any]]:
            suite_ = suite or rc.DEFAULT_SUITE
            try:
                rc.check_public_key(suite_, owner_public_key)
            except rc.ReleaseVerificationError as exc:
                raise RequestError(str(exc), reason=exc.reason) from None
            self._owned(caller, model_id)  # authorization before Vault mints anything
            dek, wrapped = self._vault.generate_dek(model_id)
            try:
                box: dict[str, int] = {}

                def change(rec: ModelRecord) -> None:
                    if rec.revoked:
                        raise ModelRevokedError("model is revoked", reason="model.revoked")
                    v = max(rec.versions, default=0) + 1
                    rec.versions[v] = VersionRecord(wrapped_dek=wrapped, created_at=utc_now())
                    rec.latest_version = v
                    box["v"] = v

                self._modify(caller, model_id, change)
                version = box["v"]
                info = rc.owner_info(suite=suite_, model_id=model_id, model_version=version, public_key=bytes(owner_public_key))
                enc, ct = rc.hpke_seal(suite_, bytes(owner_public_key), dek, info)
            finally:
                dek[:] = bytes(len(dek))
            kid = key_id_of(wrapped)
            return (pb.CreateVersionResponse(version=version, enc=enc, ciphertext=ct, key_id=kid),
                    {"model_version": version, "key_version": key_version_of(wrapped)})

        return self._run("create_version", caller, model_id, go)

    def rotate(self, caller: CallerInfo, model_id: str, rewrap: bool) -> pb.RotateKeyResponse:
        def go() -> tuple[pb.RotateKeyResponse, dict[str, Any]]:
            self._owned(caller, model_id)
            new = self._vault.rotate_key(model_id)
            count = {"n": 0}

            def change(rec: ModelRecord) -> None:
                count["n"] = 0
                if not rewrap:
                    return
                for vr in rec.versions.values():
                    vr.wrapped_dek = self._vault.rewrap_dek(model_id, vr.wrapped_dek)
                    count["n"] += 1

            if rewrap:
                self._modify(caller, model_id, change)
            return (pb.RotateKeyResponse(key_version=new, rewrapped=count["n"]),
                    {"key_version": new, "rewrapped": count["n"]})

        return self._run("rotate", caller, model_id, go)

    def retire(self, caller: CallerInfo, model_id: str, version: int) -> pb.ModelSummary:
        def go() -> tuple[pb.ModelSummary, dict[str, Any]]:
            def change(rec: ModelRecord) -> None:
                vr = rec.versions.get(int(version))
                if vr is None:
                    raise RequestError(f"model has no version {version}", reason="model.version_not_found")
                vr.retired = True

            rec = self._modify(caller, model_id, change)
            return summary_of(rec), {"model_version": int(version)}

        return self._run("retire", caller, model_id, go)

    def revoke(self, caller: CallerInfo, model_id: str) -> pb.ModelSummary:
        def go() -> tuple[pb.ModelSummary, dict[str, Any]]:
            def change(rec: ModelRecord) -> None:
                rec.revoked = True

            rec = self._modify(caller, model_id, change, admin_ok=True)
            return summary_of(rec), {}

        return self._run("revoke", caller, model_id, go)


class AuditReader:
    """Reads the audit JSON Lines file for the Audit service (admins only)."""

    def __init__(self, path: str | os.PathLike[str], admins: Collection[str]) -> None:
        self.path = Path(path)
        self.admins = frozenset(admins)

    def _check(self, caller: CallerInfo) -> None:
        if not caller.identity:
            raise AuthError("a client certificate is required", reason="auth.unauthenticated")
        if caller.identity not in self.admins:
            raise PermissionDeniedError("audit records are for admin identities only", reason="auth.forbidden")

    def tail(self, caller: CallerInfo, limit: int) -> list[str]:
        self._check(caller)
        n = min(int(limit) or 100, MAX_TAIL)
        return [r.to_json() for r in deque(self._records(), maxlen=n)]

    def _records(self, **filters: Any) -> Iterator[AuditRecord]:
        if not self.path.exists():
            return iter(())
        return iter_records(self.path, **filters)

    def query(self, caller: CallerInfo, q: pb.QueryRequest) -> list[str]:
        self._check(caller)
        n = min(int(q.limit) or 1000, MAX_TAIL)
        def iso(ms: int) -> str | None:
            return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).isoformat() if ms else None
        out: list[str] = []
        for r in self._records(model=q.model_id or None, decision=q.decision or None, kind=q.event or None,
                               since=iso(q.since_ms), until=iso(q.until_ms)):
            if q.reason and r.get("reason") != q.reason:
                continue
            out.append(r.to_json())
            if len(out) >= n:
                break
        return out
