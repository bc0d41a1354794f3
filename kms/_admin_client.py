"""Client for the key service's admin port (``ModelAdmin`` and ``Audit``), over mutual TLS.

    with AdminClient("kms.example.org:8444", ca="ca.pem", cert="owner.pem", key="owner.key") as c:
        c.register("llama-3-8b", Path("policy.yaml").read_text())
        version, dek = c.create_version("llama-3-8b")   # dek: bytearray, wipe after sealing
        ...
        dek[:] = bytes(len(dek))

Errors come back as ``KmsError`` subclasses carrying the server's reason code
(``weightseal-reason`` trailing metadata).
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb
from weightseal.proto import weightseal_v1_pb2_grpc as pbg

from ._errors import (
    AuthError,
    KmsError,
    ModelNotFoundError,
    PermissionDeniedError,
    VaultUnavailableError,
)

__all__ = ["AdminClient", "RemoteError", "error_from_rpc", "REASON_KEY"]

T = TypeVar("T")
REASON_KEY = "weightseal-reason"


class RemoteError(KmsError):
    """The key service refused a call; ``reason`` is its code, ``code`` the gRPC status name."""

    default_reason = "kms.remote"

    def __init__(self, message: str = "", *, reason: str | None = None, code: str = "UNKNOWN") -> None:
        super().__init__(message, reason=reason)
        self.code = code


_CLASS_BY_CODE: dict[grpc.StatusCode, type[KmsError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: ModelNotFoundError,
}


def error_from_rpc(exc: grpc.RpcError) -> KmsError:
    """Turn a ``grpc.RpcError`` into our error, keeping the server's reason code."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    reason = None
    try:
        for k, v in exc.trailing_metadata() or ():
            if k == REASON_KEY:
                reason = v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - no metadata (e.g. connection failure)
        reason = None
    details = exc.details() if hasattr(exc, "details") else ""
    if reason is None:
        reason = "kms.unavailable" if code == grpc.StatusCode.UNAVAILABLE else f"rpc.{code.name.lower()}"
    cls = _CLASS_BY_CODE.get(code)
    if code == grpc.StatusCode.UNAVAILABLE and reason == "vault.unavailable":
        cls = VaultUnavailableError
    msg = details or code.name
    if cls is not None:
        err: KmsError = cls(msg, reason=reason)
        err.code = code.name
        return err
    return RemoteError(msg, reason=reason, code=code.name)


def _read(p: str | os.PathLike[str] | bytes | None) -> bytes | None:
    if p is None:
        return None
    if isinstance(p, bytes):
        return p
    return Path(p).read_bytes()


class AdminClient:
    """``AdminClient(address, ca=..., cert=..., key=...)``; paths or PEM bytes.  ``insecure``
    opens a plaintext channel (only useful against a release port in development: the admin port
    always requires mutual TLS, so admin calls over it are UNAUTHENTICATED)."""

    def __init__(self, address: str, *, ca: str | os.PathLike[str] | bytes | None = None,
                 cert: str | os.PathLike[str] | bytes | None = None, key: str | os.PathLike[str] | bytes | None = None,
                 insecure: bool = False, timeout: float = 30.0, server_name: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        if insecure:
            self._channel = grpc.insecure_channel(address)
        else:
            if (cert is None) != (key is None):
                raise KmsError("client certificate and key go together", reason="config.invalid")
            creds = grpc.ssl_channel_credentials(root_certificates=_read(ca), private_key=_read(key),
                                                 certificate_chain=_read(cert))
            opts = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._channel = grpc.secure_channel(address, creds, options=opts)
        self._admin = pbg.ModelAdminStub(self._channel)
        self._audit = pbg.AuditStub(self._channel)

    def __repr__(self) -> str:
        return f"AdminClient({self.address!r})"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rpc(self, fn: Callable[..., T], req: Any) -> T:
        try:
            return fn(req, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    # -- models ---------------------------------------------------------------------------------
    def register(self, model_id: str, policy_json: str) -> pb.ModelSummary:
        return self._rpc(self._admin.RegisterModel, pb.RegisterModelRequest(model_id=model_id, policy_json=policy_json))

    def get(self, model_id: str) -> pb.ModelSummary:
        return self._rpc(self._admin.GetModel, pb.GetModelRequest(model_id=model_id))

    def list(self) -> list[pb.ModelSummary]:  # noqa: A003
        return list(self._rpc(self._admin.ListModels, pb.ListModelsRequest()).models)

    def set_policy(self, model_id: str, policy_json: str, expected_policy_version: int = 0) -> pb.ModelSummary:
        return self._rpc(self._admin.SetPolicy, pb.SetPolicyRequest(
            model_id=model_id, policy_json=policy_json, expected_policy_version=expected_policy_version))

    def create_version(self, model_id: str, *, suite: str = rc.DEFAULT_SUITE) -> tuple[int, bytearray]:
        """A new model version: ``(version, DEK)``.  The DEK travels HPKE-sealed to a key pair
        made here for this call (``info`` binds model id and version); the caller seals with it
        and must overwrite the bytearray afterwards."""
        priv, pub = rc.make_hpke_keypair(suite)
        resp = self._rpc(self._admin.CreateVersion, pb.CreateVersionRequest(
            model_id=model_id, hpke_suite=suite, owner_hpke_public_key=pub))
        info = rc.owner_info(suite=suite, model_id=model_id, model_version=resp.version, public_key=pub)
        dek = rc.hpke_open(priv, resp.enc, resp.ciphertext, info)
        if len(dek) != rc.DEK_LEN:
            dek[:] = bytes(len(dek))
            raise rc.ReleaseVerificationError("data key has the wrong length", reason="release.invalid")
        return int(resp.version), dek

    def rotate(self, model_id: str, *, rewrap: bool = True) -> pb.RotateKeyResponse:
        return self._rpc(self._admin.RotateKey, pb.RotateKeyRequest(model_id=model_id, rewrap=rewrap))

    def retire(self, model_id: str, version: int) -> pb.ModelSummary:
        return self._rpc(self._admin.RetireVersion, pb.RetireVersionRequest(model_id=model_id, version=version))

    def revoke(self, model_id: str) -> pb.ModelSummary:
        return self._rpc(self._admin.RevokeModel, pb.RevokeModelRequest(model_id=model_id))

    # -- audit ----------------------------------------------------------------------------------
    def audit_tail(self, limit: int = 100) -> builtins.list[str]:
        return list(self._rpc(self._audit.Tail, pb.TailRequest(limit=limit)).records_json)

    def audit_query(self, **filters: Any) -> builtins.list[str]:
        return list(self._rpc(self._audit.Query, pb.QueryRequest(**filters)).records_json)
