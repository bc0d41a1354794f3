"""The gRPC key service: ``serve(config) -> Server``.

Two listeners, one process:

* ``listen`` (release port): ``KeyRelease`` for TEEs, server-side TLS (a TEE has no client
  certificate; it authenticates with hardware evidence), plus gRPC health and reflection.  The
  admin services are registered here too, only so a caller without a client certificate gets a
  clean UNAUTHENTICATED instead of UNIMPLEMENTED.
* ``admin_listen`` (admin port): ``ModelAdmin`` and ``Audit`` behind mutual TLS (client
  certificates issued by ``tls.client_ca`` are required in the handshake), plus health and
  reflection.  gRPC Python cannot request-but-not-require a client certificate on one port,
  hence the split; operators usually expose only the release port to TEEs.

Every failure leaves as a gRPC status from one table (:data:`STATUS_BY_REASON`,
:data:`STATUS_BY_CLASS`), with the stable reason code in the trailing metadata key
``weightseal-reason`` and at the start of the status message.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nacl.signing
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from weightseal.attest._errors import (
    AttestationError,
    PolicyDenied,
    PolicyFormatError,
    WeightsealError,
)
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb
from weightseal.proto import weightseal_v1_pb2_grpc as pbg

from ._admin import AuditReader, ModelAdministrator
from ._auth import REASON_KEY, AuthInterceptor, current_caller
from ._config import KmsConfig, load_or_create_nonce_secret, load_or_create_signing_key
from ._errors import (
    AuditError,
    AuthError,
    ConfigError,
    KmsError,
    ModelNotFoundError,
    ModelRevokedError,
    NonceError,
    PermissionDeniedError,
    VaultError,
    VaultUnavailableError,
)
from ._metrics import KmsMetrics
from ._nonce import NonceService
from ._registry import Registry
from ._release import AttestationOptions, KeyReleaser, RequestError
from ._vault import TokenRenewer, VaultBackend, login_approle

__all__ = ["Server", "serve", "status_for", "STATUS_BY_REASON", "STATUS_BY_CLASS", "JsonLogFormatter"]

log = logging.getLogger("weightseal.kms.server")
T = TypeVar("T")
SC = grpc.StatusCode

#: Reason codes whose status differs from their class's.
STATUS_BY_REASON: dict[str, grpc.StatusCode] = {
    "nonce.expired": SC.FAILED_PRECONDITION,
    "nonce.replayed": SC.FAILED_PRECONDITION,
    "nonce.capacity": SC.RESOURCE_EXHAUSTED,
    "model.invalid_id": SC.INVALID_ARGUMENT,
    "model.exists": SC.ALREADY_EXISTS,
    "model.version_not_found": SC.NOT_FOUND,
    "registry.conflict": SC.ABORTED,
    "registry.corrupt": SC.INTERNAL,
    "vault.key_not_found": SC.FAILED_PRECONDITION,
    "attest.mock.not_allowed": SC.PERMISSION_DENIED,
}

#: Exception class -> status (first match along the MRO wins).
STATUS_BY_CLASS: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (AuthError, SC.UNAUTHENTICATED),
    (PermissionDeniedError, SC.PERMISSION_DENIED),
    (ModelNotFoundError, SC.NOT_FOUND),
    (ModelRevokedError, SC.PERMISSION_DENIED),
    (NonceError, SC.PERMISSION_DENIED),  # nonce.invalid / nonce.model
    (VaultUnavailableError, SC.UNAVAILABLE),
    (VaultError, SC.INTERNAL),
    (AuditError, SC.UNAVAILABLE),  # fail closed: no record, no key
    (ConfigError, SC.INTERNAL),
    (RequestError, SC.INVALID_ARGUMENT),
    (rc.ReleaseVerificationError, SC.INVALID_ARGUMENT),
    (PolicyFormatError, SC.INVALID_ARGUMENT),
    (PolicyDenied, SC.PERMISSION_DENIED),
    (AttestationError, SC.PERMISSION_DENIED),
    (KmsError, SC.INTERNAL),
    (WeightsealError, SC.INTERNAL),
)


def status_for(exc: WeightsealError) -> grpc.StatusCode:
    code = STATUS_BY_REASON.get(exc.reason)
    if code is not None:
        return code
    for cls, c in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return c
    return SC.INTERNAL  # pragma: no cover


def _abort(context: grpc.ServicerContext, exc: WeightsealError) -> Any:
    code = status_for(exc)
    context.set_trailing_metadata(((REASON_KEY, exc.reason),))
    context.abort(code, str(exc)[:1000])


def _call(context: grpc.ServicerContext, fn: Callable[[], T], metrics: KmsMetrics | None = None, method: str = "") -> T:
    try:
        out = fn()
    except WeightsealError as exc:
        if metrics is not None and method:
            metrics.admin_calls.labels(method=method, reason=exc.reason).inc()
        if isinstance(exc, VaultUnavailableError) and metrics is not None and method:
            metrics.vault_error()
        _abort(context, exc)
        raise AssertionError("unreachable") from None  # pragma: no cover
    except Exception:
        log.exception("unexpected error")
        context.set_trailing_metadata(((REASON_KEY, "internal"),))
        context.abort(SC.INTERNAL, "internal: unexpected server error")
        raise AssertionError("unreachable") from None  # pragma: no cover
    if metrics is not None and method:
        metrics.admin_calls.labels(method=method, reason="ok").inc()
    return out


class _KeyReleaseServicer(pbg.KeyReleaseServicer):  # type: ignore[misc]
    def __init__(self, releaser: KeyReleaser, metrics: KmsMetrics) -> None:
        self.releaser = releaser
        self.metrics = metrics

    def Challenge(self, request: pb.ChallengeRequest, context: grpc.ServicerContext) -> pb.ChallengeResponse:  # noqa: N802
        def go() -> pb.ChallengeResponse:
            nonce, exp = self.releaser.challenge(request.model_id, current_caller())
            self.metrics.challenges.inc()
            return pb.ChallengeResponse(nonce=nonce, expires_at_ms=exp)

        return _call(context, go)

    def ReleaseKey(self, request: pb.ReleaseKeyRequest, context: grpc.ServicerContext) -> pb.ReleaseKeyResponse:  # noqa: N802
        return _call(context, lambda: self.releaser.release(request, current_caller()))


class _ModelAdminServicer(pbg.ModelAdminServicer):  # type: ignore[misc]
    def __init__(self, admin: ModelAdministrator, metrics: KmsMetrics) -> None:
        self.a = admin
        self.m = metrics

    def RegisterModel(self, r: pb.RegisterModelRequest, c: grpc.ServicerContext) -> pb.ModelSummary:  # noqa: N802
        return _call(c, lambda: self.a.register(current_caller(), r.model_id, r.policy_json), self.m, "RegisterModel")

    def GetModel(self, r: pb.GetModelRequest, c: grpc.ServicerContext) -> pb.ModelSummary:  # noqa: N802
        return _call(c, lambda: self.a.get(current_caller(), r.model_id), self.m, "GetModel")

    def ListModels(self, r: pb.ListModelsRequest, c: grpc.ServicerContext) -> pb.ListModelsResponse:  # noqa: N802
        return _call(c, lambda: self.a.list(current_caller()), self.m, "ListModels")

    def SetPolicy(self, r: pb.SetPolicyRequest, c: grpc.ServicerContext) -> pb.ModelSummary:  # noqa: N802
        return _call(c, lambda: self.a.set_policy(current_caller(), r.model_id, r.policy_json, r.expected_policy_version),
                     self.m, "SetPolicy")

    def CreateVersion(self, r: pb.CreateVersionRequest, c: grpc.ServicerContext) -> pb.CreateVersionResponse:  # noqa: N802
        return _call(c, lambda: self.a.create_version(current_caller(), r.model_id, r.hpke_suite, r.owner_hpke_public_key),
                     self.m, "CreateVersion")

    def RotateKey(self, r: pb.RotateKeyRequest, c: grpc.ServicerContext) -> pb.RotateKeyResponse:  # noqa: N802
        return _call(c, lambda: self.a.rotate(current_caller(), r.model_id, r.rewrap), self.m, "RotateKey")

    def RetireVersion(self, r: pb.RetireVersionRequest, c: grpc.ServicerContext) -> pb.ModelSummary:  # noqa: N802
        return _call(c, lambda: self.a.retire(current_caller(), r.model_id, r.version), self.m, "RetireVersion")

    def RevokeModel(self, r: pb.RevokeModelRequest, c: grpc.ServicerContext) -> pb.ModelSummary:  # noqa: N802
        return _call(c, lambda: self.a.revoke(current_caller(), r.model_id), self.m, "RevokeModel")


class _AuditServicer(pbg.AuditServicer):  # type: ignore[misc]
    def __init__(self, reader: AuditReader, metrics: KmsMetrics) -> None:
        self.r = reader
        self.m = metrics

    def Tail(self, r: pb.TailRequest, c: grpc.ServicerContext) -> pb.AuditRecords:  # noqa: N802
        return _call(c, lambda: pb.AuditRecords(records_json=self.r.tail(current_caller(), r.limit)), self.m, "Tail")

    def Query(self, r: pb.QueryRequest, c: grpc.ServicerContext) -> pb.AuditRecords:  # noqa: N802
        return _call(c, lambda: pb.AuditRecords(records_json=self.r.query(current_caller(), r)), self.m, "Query")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``extra``
    fields (callers pass only identifiers and reason codes, never key material)."""

    _STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._STD and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, separators=(",", ":"))


@dataclass
class _Listener:
    server: grpc.Server
    port: int
    health: health.HealthServicer


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", reason="config.invalid") from None


def _open_audit(cfg: KmsConfig, signing_key: nacl.signing.SigningKey) -> Any:
    from ._audit import AuditLog

    Path(cfg.audit.path).parent.mkdir(parents=True, exist_ok=True)
    replica = cfg.audit.replica or cfg.listen
    return AuditLog(cfg.audit.path, signing_key, replica=replica, checkpoint_every=cfg.audit.checkpoint_every)


def attestation_options(cfg: KmsConfig) -> AttestationOptions:
    """What the verifiers get besides the evidence: trusted mock keys (development), TDX
    collateral per FMSPC (a directory, or Intel PCS / a PCCS), the fleet's NVIDIA RIMs (a
    directory, or NVIDIA's RIM service), NVIDIA OCSP, AMD KDS,
    AMD ARK CRLs (a directory, or KDS).  A configured directory that does not exist is a
    configuration error at start-up."""
    from weightseal.attest._errors import CollateralError
    from weightseal.attest._files import read_limited
    from weightseal.attest._nvgpu_ocsp import NvidiaOcsp
    from weightseal.attest._nvgpu_rim import NvidiaRimService, RimStore
    from weightseal.attest._snp_crl import SnpCrlDir
    from weightseal.attest._snp_kds import KdsClient
    from weightseal.attest._tdx_collateral import IntelPcsFetcher, TdxCollateralDir

    att = cfg.attestation
    mock_keys = [bytes.fromhex(k) for k in att.mock_keys] or None
    try:
        tdx_fetcher: Any = None
        if att.tdx_collateral_dir:
            tdx_fetcher = TdxCollateralDir(att.tdx_collateral_dir, allow_partial=att.tdx_collateral_partial)
        elif att.tdx_pcs_url:
            tdx_fetcher = (IntelPcsFetcher(base_url=att.tdx_pcs_url, root_crl_url=att.tdx_root_crl_url)
                           if att.tdx_root_crl_url else IntelPcsFetcher(base_url=att.tdx_pcs_url))
        rims: Any = RimStore(att.gpu_rim_dir) if att.gpu_rim_dir else ()
        if att.gpu_rim_service_url:
            key = None
            if att.gpu_rim_service_key_file:
                raw = read_limited(att.gpu_rim_service_key_file, 4096, what="RIM service key",
                                   error=lambda m: CollateralError(m, reason="config.invalid")).strip()
                if not raw or not all(0x21 <= b <= 0x7E for b in raw):
                    raise ConfigError("attestation.gpu_rim_service_key_file must hold one printable ASCII token",
                                      reason="config.invalid")
                key = raw.decode("ascii")
            rims = NvidiaRimService(base_url=att.gpu_rim_service_url, service_key=key,
                                    ca_file=att.gpu_rim_service_ca_file, cache_dir=att.gpu_rim_cache_dir)
        snp_crl: Any = SnpCrlDir(att.snp_crl_dir) if att.snp_crl_dir else None
    except AttestationError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1], reason="config.invalid") from None
    kds = KdsClient(cache_dir=att.snp_kds_cache_dir, base_url=att.snp_kds_url) if att.snp_kds_url else None
    if att.snp_crl_from_kds:
        snp_crl = kds
    gpu_ocsp = (NvidiaOcsp(url=att.gpu_ocsp_url, ca_file=att.gpu_ocsp_ca_file, nonce=att.gpu_ocsp_nonce)
                if att.gpu_ocsp_url else None)
    return AttestationOptions(mock_keys=mock_keys, tdx_fetcher=tdx_fetcher, gpu_rims=rims, snp_kds=kds,
                              snp_crl=snp_crl, gpu_ocsp=gpu_ocsp)


def attestation_summary(att: AttestationOptions) -> dict[str, str]:
    """Which collateral and revocation sources the verifiers use (for the start-up log and
    operators): ``off`` or the source's repr, which never holds a secret."""
    def src(x: Any) -> str:
        return "off" if x is None or x == () else repr(x)

    return {
        "mock_keys": f"{len(list(att.mock_keys or ()))} pinned",
        "tdx_collateral": src(att.tdx_fetcher if att.tdx_fetcher is not None else att.tdx_collateral),
        "gpu_rims": src(att.gpu_rims),
        "gpu_ocsp": src(att.gpu_ocsp),
        "snp_kds": src(att.snp_kds),
        "snp_crl": src(att.snp_crl),
    }


class Server:
    """A running key service.  Use as a context manager, or call :meth:`stop`."""

    def __init__(self, config: KmsConfig, *, vault_client: Any = None, clock: Callable[[], float] = time.time,
                 audit: Any = None, tls_root_override: bytes | None = None) -> None:
        self.config = config
        self._renewer: TokenRenewer | None = None
        self._stopped = threading.Event()
        # keys
        self.signing_key = load_or_create_signing_key(config.keys.signing_key, create=config.dev)
        self.public_key = bytes(self.signing_key.verify_key)
        self.service_key_id = rc.service_key_id(self.public_key)
        secret = load_or_create_nonce_secret(config.keys.nonce_secret, create=config.dev)
        # Vault
        if vault_client is None:
            v = config.vault
            if not (v.address and v.role_id and (v.secret_id or v.secret_id_file)):
                raise ConfigError("Vault address and AppRole credentials are required", reason="config.invalid")
            secret_id = v.secret_id or _read_file(str(v.secret_id_file)).decode().strip()
            vault_client = login_approle(v.address, v.role_id, secret_id, verify=v.ca_cert or True,
                                         timeout=v.timeout_seconds, mount_point=v.approle_mount)
            self._renewer = TokenRenewer(vault_client, role_id=v.role_id, secret_id=secret_id,
                                         approle_mount=v.approle_mount).start()
        self.vault = VaultBackend(vault_client, transit_mount=config.vault.transit_mount, kv_mount=config.vault.kv_mount)
        self.registry = Registry(self.vault)
        self.audit = audit if audit is not None else _open_audit(config, self.signing_key)
        self.metrics = KmsMetrics()
        self.attestation = attestation_options(config)
        self.metrics.watch_collateral(self.attestation.tdx_fetcher, self.attestation.gpu_rims,
                                      self.attestation.snp_crl)
        self.nonces = NonceService(secret, ttl_seconds=config.nonce_ttl_seconds, clock=clock)
        self.releaser = KeyReleaser(registry=self.registry, vault=self.vault, audit=self.audit, nonces=self.nonces,
                                    signing_key=self.signing_key, dev_mode=config.dev,
                                    attestation=self.attestation, metrics=self.metrics, clock=clock)
        self.admin = ModelAdministrator(registry=self.registry, vault=self.vault, audit=self.audit,
                                        admins=config.auth.admins)
        self.audit_reader = AuditReader(config.audit.path, config.auth.admins)
        # gRPC
        self._release = self._build(config.listen, admin_port=False)
        self._admin = self._build(config.admin_listen, admin_port=True)
        self.port = self._release.port
        self.admin_port = self._admin.port
        host = config.listen.rpartition(":")[0]
        self.address = f"{host}:{self.port}"
        self.admin_address = f"{config.admin_listen.rpartition(':')[0]}:{self.admin_port}"
        self.metrics_port: int | None = None
        if config.metrics.listen is not None:
            mh, _, mp = config.metrics.listen.rpartition(":")
            self.metrics_port = self.metrics.serve(mh, int(mp))

    def __repr__(self) -> str:
        return f"Server(address={self.address!r}, admin_address={self.admin_address!r}, key={self.service_key_id})"

    def __reduce__(self) -> Any:
        raise TypeError("Server cannot be pickled")

    def _credentials(self, admin_port: bool) -> grpc.ServerCredentials | None:
        t = self.config.tls
        if t.insecure and not admin_port:
            return None
        if not (t.cert and t.key):
            raise ConfigError("tls.cert and tls.key are required", reason="config.invalid")
        pair = (_read_file(t.key), _read_file(t.cert))
        if admin_port:
            if not t.client_ca:
                raise ConfigError("tls.client_ca is required for the admin port", reason="config.invalid")
            return grpc.ssl_server_credentials([pair], root_certificates=_read_file(t.client_ca),
                                               require_client_auth=True)
        return grpc.ssl_server_credentials([pair])

    def _build(self, listen: str, *, admin_port: bool) -> _Listener:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.config.max_workers,
                                                        thread_name_prefix="kms-admin" if admin_port else "kms-release"),
                             interceptors=[AuthInterceptor()],
                             options=[("grpc.max_receive_message_length", 8 << 20),
                                      ("grpc.so_reuseport", 0)])
        names = [pb.DESCRIPTOR.services_by_name[n].full_name for n in ("KeyRelease", "ModelAdmin", "Audit")]
        if not admin_port:
            pbg.add_KeyReleaseServicer_to_server(_KeyReleaseServicer(self.releaser, self.metrics), server)
        pbg.add_ModelAdminServicer_to_server(_ModelAdminServicer(self.admin, self.metrics), server)
        pbg.add_AuditServicer_to_server(_AuditServicer(self.audit_reader, self.metrics), server)
        hs = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        served = [n for n in names if not (admin_port and n.endswith("KeyRelease"))]
        for n in ("", *served):
            hs.set(n, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((*served, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        creds = self._credentials(admin_port)
        port = server.add_secure_port(listen, creds) if creds is not None else server.add_insecure_port(listen)
        if port == 0:
            raise ConfigError(f"cannot listen on {listen}", reason="config.invalid")
        server.start()
        return _Listener(server=server, port=port, health=hs)

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: health NOT_SERVING, stop accepting, drain in-flight calls for up to
        ``grace`` seconds, then close the audit log (it writes a final checkpoint)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        g = self.config.shutdown_grace_seconds if grace is None else grace
        for lst in (self._release, self._admin):
            lst.health.enter_graceful_shutdown()
        events = [self._release.server.stop(g), self._admin.server.stop(g)]
        for ev in events:
            ev.wait(g + 1)
        self.metrics.close()
        if self._renewer is not None:
            self._renewer.stop()
        close = getattr(self.audit, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # noqa: BLE001
                log.error("closing the audit log failed: %s", getattr(exc, "reason", type(exc).__name__))

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(0.5)


def serve(config: KmsConfig, *, vault_client: Any = None, clock: Callable[[], float] = time.time, audit: Any = None) -> Server:
    """Start the key service described by ``config``; returns the running :class:`Server`.

    ``vault_client``: an authenticated ``hvac.Client`` (tests, dev mode); without it the server
    logs in with the configured AppRole and keeps its token renewed."""
    srv = Server(config, vault_client=vault_client, clock=clock, audit=audit)
    log.info("key service listening", extra={"event": "start", "address": srv.address, "admin_address": srv.admin_address,
                                             "service_key_id": srv.service_key_id, "dev": config.dev,
                                             "attestation": attestation_summary(srv.attestation)})
    return srv
