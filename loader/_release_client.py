"""The loader's key-release client: attested key release over gRPC, then a verified load.

Runs inside the TEE (DESIGN.md "Key release protocol", the client's steps)::

    1. read the sealed directory's manifest (public view: model id and version only)
    2. Challenge(model_id) -> 32-byte nonce
    3. make an ephemeral HPKE key pair (RFC 9180)
    4. report_data = SHA-512(domain, nonce, model id, HPKE public key)   (attest._binding)
    5. collect evidence binding report_data: the TEE found on this machine ("auto"), a named
       one ("snp", "tdx"), or the UNSAFE software mock -- only when named, with a mock key
    6. ReleaseKey(model id, version, nonce, suite, public key, evidence)
    7. verify the response's Ed25519 signature against the PINNED service public key, check it
       is for this model/version/nonce/key, open the HPKE box  (proto._release_crypto)
    8. verify the manifest and shards with the released DEK and decrypt onto the device
    9. wipe the DEK (and the HPKE private key goes out of scope)

The loader talks to the key service over the wire only: it imports ``weightseal.proto`` and
``weightseal.attest``, never ``weightseal.kms``.

Transport: TLS with a pinned CA certificate; a plaintext channel only when
``KmsTarget(insecure_dev=True)`` is asked for by name (development key services).  UNAVAILABLE
(network, Vault down, audit log unwritable) is retried with exponential backoff and jitter; every
retry starts over from a fresh Challenge, since the server spends a nonce even when it denies.
Denials raise :class:`KeyReleaseDenied` with the server's reason code (trailing metadata
``weightseal-reason``) and a hint for a human.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import torch
from weightseal.attest._binding import report_data
from weightseal.attest._collect import collect
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb
from weightseal.proto import weightseal_v1_pb2_grpc as pbg

from ._errors import IntegrityError, LoaderError
from ._keys import DataKey, LocalKey
from ._manifest import read_manifest

__all__ = [
    "KmsTarget",
    "RetryPolicy",
    "KeyReleaseError",
    "KeyReleaseDenied",
    "KeyServiceUnavailable",
    "ReleaseResponseError",
    "ReleaseInfo",
    "LoadReport",
    "hint_for",
    "load_service_public_key",
    "release_key",
    "load_model",
    "verified_files",
    "REASON_KEY",
]

log = logging.getLogger("weightseal.loader.release")

REASON_KEY = "weightseal-reason"
_MAX_PEM = 1 << 20


# ---------------------------------------------------------------------------------------------
# errors


class KeyReleaseError(LoaderError):
    """Root of the key-release client's errors.  ``hint`` says what to do about it."""

    default_reason = "release.error"

    def __init__(self, message: str = "", *, reason: str | None = None, hint: str = "", code: str = "") -> None:
        super().__init__(message, reason=reason)
        self.hint = hint or hint_for(self.reason)
        self.code = code  # gRPC status name when the server answered

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base


class KeyReleaseDenied(KeyReleaseError):
    """The key service refused to release the key.  ``reason`` is the server's stable code
    (``policy.measurement``, ``nonce.expired``, ``attest.snp.signature`` ...), ``code`` the gRPC
    status name, ``hint`` a human next step."""

    default_reason = "release.denied"


class KeyServiceUnavailable(KeyReleaseError):
    """The key service could not be reached (or stayed UNAVAILABLE) after every retry; also a
    TLS handshake failure against the pinned CA (``kms.tls``)."""

    default_reason = "kms.unavailable"


class ReleaseResponseError(KeyReleaseError):
    """The service's answer failed the client's checks: not signed by the pinned key
    (``release.signature``), for another request (``release.binding``), undecryptable
    (``release.decrypt``), stale or malformed.  The key is refused."""

    default_reason = "release.invalid"


_HINTS: tuple[tuple[str, str], ...] = (
    # most specific first: exact codes, then prefixes
    ("policy.measurement", "this TEE's launch measurement is not in the model's policy allowlist; the model "
                           "owner must add it (`weightseal model policy set`) or you are running an unexpected image"),
    ("policy.model_version", "this sealed model version is retired or unknown to the key service; load a current "
                             "version or ask the owner to re-enable it"),
    ("policy.debug", "the TEE runs with debugging enabled, which the policy forbids; launch it without debug"),
    ("policy.tcb", "the platform's TCB/firmware is older than the policy's minimum; update firmware or the policy"),
    ("policy.gpu.", "the GPU evidence does not satisfy the policy (CC mode, driver/VBIOS version, count)"),
    ("policy.platform", "no profile of the model's policy is for this platform (e.g. the policy names SNP, "
                        "this is TDX); the owner must add a profile for it"),
    ("policy.invalid", "the model's stored policy is malformed; the owner must set a valid one"),
    ("policy.mock.", "the mock platform's key is not one the policy allows (platform_keys)"),
    ("policy.tdx.", "a TDX register or TCB status is not what the model's policy requires"),
    ("policy.", "the evidence verified but the model's release policy does not allow it; compare the "
                "claims in `weightseal audit show` with the policy"),
    ("attest.mock.not_allowed", "mock evidence needs a key service started with --dev AND a policy naming the "
                                "mock platform; production services never accept it"),
    ("attest.mock.untrusted_key", "the mock platform key is not one the key service trusts "
                                  "(attestation.mock_keys)"),
    ("attest.collect.no_tee", "no TEE found on this machine; run inside an SEV-SNP/TDX confidential VM, or for "
                              "development name the mock attester explicitly (--attester mock --mock-key F)"),
    ("attest.collect", "evidence could not be collected on this machine (TEE driver/configfs-tsm/NVML); see the "
                       "message for the device that failed"),
    ("attest.", "the key service rejected the evidence itself (signature, certificate chain, binding or "
                "TCB); check the TEE's firmware, certificates and collateral"),
    ("nonce.expired", "the challenge expired before the release request arrived; check clock skew and latency "
                      "(the nonce lifetime is the service's nonce_ttl_seconds)"),
    ("nonce.replayed", "the challenge nonce was already used; every request needs a fresh Challenge"),
    ("nonce.", "the challenge nonce was not accepted (issued by another key service or for another model)"),
    ("model.not_found", "the key service does not know this model id; check the sealed manifest's model id and "
                        "that the owner registered it"),
    ("model.revoked", "the model owner revoked this model; no key is released for it any more"),
    ("model.", "the model or version is not known to the key service"),
    ("auth.", "the key service did not accept this caller"),
    ("vault.", "the key service cannot use Vault right now (an operator problem); retry later"),
    ("audit.", "the key service cannot write its audit log and fails closed (an operator problem); retry later"),
    ("request.", "the key service rejected the request as malformed; loader and service versions may differ"),
    ("hpke.", "the key service does not accept this HPKE suite or public key"),
    ("release.signature", "the response is NOT signed by the pinned key service key: either --service-key is "
                          "wrong or something between you and the service is impersonating it (do not load)"),
    ("release.binding", "the response is for another request/model/key: possible replay or a misbehaving proxy"),
    ("release.stale", "the response is too old (or from the future); check this machine's clock"),
    ("release.", "the key service's response failed verification; the key was refused"),
    ("kms.tls", "TLS handshake with the key service failed: check --ca (the CA that issued the service's "
                "certificate) and the host name"),
    ("kms.unavailable", "cannot reach the key service: check the address, that it is running, and the network"),
    ("kms.service_key", "give the key service's Ed25519 public key (64 hex digits, `weightseal kms pubkey`)"),
    ("kms.", "key-service client configuration problem"),
    ("integrity", "the sealed files failed authentication with the released key: corrupted, tampered with, "
                  "or not the version the key service released"),
    ("internal", "the key service hit an internal error; its operator has the details in its logs"),
)


def hint_for(reason: str) -> str:
    """A one-line human hint for a reason code (exact match first, then the longest prefix)."""
    for key, text in _HINTS:
        if reason == key:
            return text
    best = ""
    text_best = ""
    for key, text in _HINTS:
        if key.endswith(".") and reason.startswith(key) and len(key) > len(best):
            best, text_best = key, text
    return text_best


# ---------------------------------------------------------------------------------------------
# target


def load_service_public_key(value: str | bytes | os.PathLike[str]) -> bytes:
    """The pinned Ed25519 public key: 32 raw bytes, 64 hex digits, or a file holding hex."""
    if isinstance(value, bytes | bytearray):
        if len(value) == 32:
            return bytes(value)
        value = bytes(value).decode("ascii", "replace")
    s = os.fspath(value).strip()
    cand = s
    if not _is_hex64(cand):
        try:
            with open(s, "rb") as fh:
                data = fh.read(4097)
        except OSError:
            raise KeyReleaseError("service public key is neither 64 hex digits nor a readable file",
                                  reason="kms.service_key") from None
        cand = data.decode("ascii", "replace").strip()
        if cand.startswith("{"):  # `weightseal kms pubkey --json`
            import json

            try:
                cand = str(json.loads(cand)["public_key"]).strip()
            except (ValueError, KeyError, TypeError):
                cand = ""
    if not _is_hex64(cand):
        raise KeyReleaseError("service public key must be 32 bytes as 64 hex digits", reason="kms.service_key")
    return bytes.fromhex(cand)


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s)


def _read_pem(v: str | bytes | os.PathLike[str]) -> bytes:
    if isinstance(v, bytes):
        return v
    try:
        with open(v, "rb") as fh:
            data = fh.read(_MAX_PEM + 1)
    except OSError as exc:
        raise KeyReleaseError(f"cannot read CA certificate {os.fspath(v)!r} ({exc.strerror})",
                              reason="kms.config") from None
    if len(data) > _MAX_PEM or b"-----BEGIN CERTIFICATE-----" not in data:
        raise KeyReleaseError(f"{os.fspath(v)!r} is not a PEM certificate file", reason="kms.config")
    return data


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for UNAVAILABLE: ``attempts`` tries in all, delays ``initial`` *
    ``multiplier``**n capped at ``max_delay``, each with +-``jitter`` (a fraction)."""

    attempts: int = 5
    initial: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.2

    def delay(self, n: int) -> float:
        d = min(self.max_delay, self.initial * self.multiplier ** n)
        return max(0.0, d * (1 + random.uniform(-self.jitter, self.jitter)))  # noqa: S311 - not crypto


@dataclass(frozen=True)
class KmsTarget:
    """Where the key service is and how to trust it.

    ``address``: its release port, ``host:port``.  ``service_public_key``: the PINNED Ed25519
    key (32 bytes, 64 hex digits or a file) that must sign every release.  ``ca``: PEM bytes or a
    path of the CA that issued the service's TLS certificate (required unless ``insecure_dev``).
    ``insecure_dev=True`` uses a plaintext channel: development key services only; the pinned
    signature still protects the key, but not the metadata.
    """

    address: str
    service_public_key: bytes | str | os.PathLike[str]
    ca: bytes | str | os.PathLike[str] | None = None
    insecure_dev: bool = False
    server_name: str | None = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        object.__setattr__(self, "service_public_key", load_service_public_key(self.service_public_key))
        host, sep, port = str(self.address).rpartition(":")
        if not sep or not host or not port.isdigit():
            raise KeyReleaseError(f"key service address must be host:port, got {self.address!r}", reason="kms.config")
        if self.ca is None and not self.insecure_dev:
            raise KeyReleaseError("give the key service's CA certificate (ca=...), or insecure_dev=True for a "
                                  "development service", reason="kms.config")
        if self.ca is not None and self.insecure_dev:
            raise KeyReleaseError("ca and insecure_dev are mutually exclusive", reason="kms.config")

    @property
    def public_key(self) -> bytes:
        pk = self.service_public_key
        assert isinstance(pk, bytes)
        return pk

    def channel(self) -> grpc.Channel:
        opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 1 << 20)]
        if self.insecure_dev:
            log.warning("key service channel to %s is PLAINTEXT (insecure_dev): development only", self.address)
            return grpc.insecure_channel(self.address, options=opts)
        assert self.ca is not None
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        creds = grpc.ssl_channel_credentials(root_certificates=_read_pem(self.ca))
        return grpc.secure_channel(self.address, creds, options=opts)


# ---------------------------------------------------------------------------------------------
# the release itself


@dataclass(frozen=True)
class ReleaseInfo:
    """What the client learned from a verified release (no key material)."""

    model_id: str
    model_version: int
    policy_digest: str
    audit_hash: str
    key_id: str
    service_key_id: str
    attempts: int
    seconds: float


def _reason_of(exc: grpc.RpcError) -> str | None:
    try:
        md = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - connection-level errors have none
        return None
    for k, v in md:
        if k == REASON_KEY:
            return v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")
    return None


def _is_tls_failure(details: str) -> bool:
    d = details.lower()
    return any(s in d for s in ("ssl", "handshake", "certificate", "tls"))


def _error_from_rpc(exc: grpc.RpcError, address: str) -> KeyReleaseError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or code.name
    reason = _reason_of(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        if reason is None:
            reason = "kms.tls" if _is_tls_failure(details) else "kms.unavailable"
        return KeyServiceUnavailable(f"key service {address} unavailable: {details}", reason=reason, code=code.name)
    if reason is None:
        reason = f"rpc.{code.name.lower()}"
    return KeyReleaseDenied(f"key service {address} denied the key: {details}", reason=reason, code=code.name)


def _rpc(fn: Callable[..., Any], req: Any, timeout: float, address: str) -> Any:
    try:
        return fn(req, timeout=timeout)
    except grpc.RpcError as exc:
        raise _error_from_rpc(exc, address) from None


def _resolve_mock(attester: str, mock_key: Any) -> Any:
    if attester != "mock":
        if mock_key is not None:
            raise KeyReleaseError("mock_key is only for attester='mock'", reason="kms.config")
        return None
    from weightseal.attest._mock import UnsafeMockPlatform

    if isinstance(mock_key, UnsafeMockPlatform):
        return mock_key
    if isinstance(mock_key, str | os.PathLike):
        return UnsafeMockPlatform.load(mock_key)
    raise KeyReleaseError("attester 'mock' needs mock_key (an UnsafeMockPlatform or its key file)",
                          reason="attest.collect.mock_key")


def _attempt(stub: pbg.KeyReleaseStub, target: KmsTarget, model_id: str, model_version: int, *, attester: str,
             mock: Any, mock_measurement: bytes, gpus: str, suite: str) -> tuple[rc.ReleasedPayload, bytearray]:
    # 2. challenge
    ch = _rpc(stub.Challenge, pb.ChallengeRequest(model_id=model_id), target.timeout, target.address)
    nonce = bytes(ch.nonce)
    if len(nonce) != 32:
        raise ReleaseResponseError("challenge nonce has the wrong length", reason="release.invalid")
    # 3. ephemeral HPKE key pair; 4. binding
    priv, pub = rc.make_hpke_keypair(suite)
    rd = report_data(nonce, model_id, pub)
    # 5. evidence (never the mock unless named)
    # collect() validates both names at run time (attest.collect.attester / .gpu)
    evidence = collect(rd, attester=cast(Any, attester), mock=mock, mock_measurement=mock_measurement,
                       gpus=cast(Any, gpus))
    # 6. release
    req = pb.ReleaseKeyRequest(model_id=model_id, model_version=model_version, nonce=nonce, hpke_suite=suite,
                               hpke_public_key=pub,
                               evidence=[pb.Evidence(platform=e.platform.value, report=e.report, certs=e.certs)
                                         for e in evidence])
    resp = _rpc(stub.ReleaseKey, req, target.timeout, target.address)
    # 7. pinned signature, binding, HPKE open
    try:
        opened: tuple[rc.ReleasedPayload, bytearray] = rc.open_release(resp.payload, resp.signature, target.public_key, priv, model_id=model_id, nonce=nonce,
                               model_version=model_version or None, now_ms=int(time.time() * 1000))
    except rc.ReleaseVerificationError as exc:
        raise ReleaseResponseError(f"refusing the key service's answer: {exc}", reason=exc.reason) from None
    return opened


def _release_dek(model_id: str, model_version: int, kms: KmsTarget, *, attester: str, mock: Any,
                 mock_measurement: bytes, gpus: str, suite: str,
                 sleep: Callable[[float], None]) -> tuple[DataKey, ReleaseInfo]:
    t0 = time.perf_counter()
    n = 0
    while True:
        n += 1
        # A fresh channel per attempt: a channel that saw a connection failure waits out gRPC's own
        # reconnect back-off (>= 1 s) and fails fast meanwhile; ours is the back-off that counts.
        channel = kms.channel()
        try:
            fields, raw = _attempt(pbg.KeyReleaseStub(channel), kms, model_id, model_version, attester=attester,
                                   mock=mock, mock_measurement=mock_measurement, gpus=gpus, suite=suite)
            break
        except KeyServiceUnavailable as exc:
            if exc.reason == "kms.tls" or n >= kms.retry.attempts:
                raise
            d = kms.retry.delay(n - 1)
            log.warning("key service unavailable (%s); retry %d/%d in %.2fs", exc.reason, n,
                        kms.retry.attempts - 1, d)
        finally:
            channel.close()
        sleep(d)
    try:
        dek = DataKey(raw)
    finally:
        raw[:] = bytes(len(raw))
    info = ReleaseInfo(model_id=fields.model_id, model_version=fields.model_version,
                       policy_digest=fields.policy_digest, audit_hash=fields.audit_hash, key_id=fields.key_id,
                       service_key_id=rc.service_key_id(kms.public_key), attempts=n,
                       seconds=time.perf_counter() - t0)
    log.info("key released for %s v%d (policy %s, audit %s)", info.model_id, info.model_version,
             info.policy_digest, info.audit_hash[:16])
    return dek, info


@contextlib.contextmanager
def release_key(model_dir: str | os.PathLike[str], *, kms: KmsTarget, attester: str = "auto", mock_key: Any = None,
                mock_measurement: bytes = bytes(48), gpus: str = "auto", hpke_suite: str = rc.DEFAULT_SUITE,
                _sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[DataKey, ReleaseInfo]]:
    """Attested release of the DEK for the sealed model in ``model_dir``, as a context manager:
    ``with release_key(d, kms=t) as (key, info): ...``; the key is wiped on exit, whatever happens.

    The model id and version come from the (public) manifest; the released key is then checked
    against the manifest by every load function (``expected_model_id``/``_version``)."""
    m = read_manifest(model_dir)
    mock = _resolve_mock(attester, mock_key)
    dek, info = _release_dek(m.model_id, m.model_version, kms, attester=attester, mock=mock,
                             mock_measurement=mock_measurement, gpus=gpus, suite=hpke_suite, sleep=_sleep)
    try:
        if info.model_id != m.model_id or (m.model_version and info.model_version != m.model_version):
            raise ReleaseResponseError("released key is for another model version", reason="release.binding")
        yield dek, info
    finally:
        dek.wipe()


# ---------------------------------------------------------------------------------------------
# load


@dataclass
class LoadReport:
    """Filled in by :func:`load_model` when a ``report`` object is passed."""

    model_id: str = ""
    model_version: int = 0
    tensors: int = 0
    bytes: int = 0
    release_seconds: float = 0.0
    load_seconds: float = 0.0
    release: ReleaseInfo | None = None

    @property
    def gb_per_s(self) -> float:
        return self.bytes / self.load_seconds / 1e9 if self.load_seconds > 0 else 0.0


def _load_with_progress(model_dir: str | os.PathLike[str], key: DataKey, device: str | torch.device,
                        names: Iterable[str] | None, *, model_id: str, model_version: int,
                        progress: Any) -> dict[str, torch.Tensor]:
    """Shard by shard through ``open_sealed``, reporting bytes to ``progress(n)``.  On any
    failure every tensor already decrypted is zeroed and nothing is returned."""
    from ._open import open_sealed

    out: dict[str, torch.Tensor] = {}
    try:
        with open_sealed(model_dir, key, device=device, expected_model_id=model_id,
                         expected_model_version=model_version) as sc:
            model = sc._model
            wanted = list(dict.fromkeys(names)) if names is not None else None
            groups: list[list[str]] = []
            for sh in model.shards:
                ns = [n for n in (wanted if wanted is not None else sh.st.tensors) if model.where.get(n) is sh]
                if ns:
                    groups.append(ns)
            if wanted is not None:
                missing = [n for n in wanted if n not in model.where]
                if missing:
                    sc.get_tensors(missing[:1])  # raises TensorNotFoundError
            for ns in groups:
                got = sc.get_tensors(ns)
                out.update(got)
                progress(sum(t.numel() * t.element_size() for t in got.values()))
        return out
    except BaseException:
        for t in out.values():
            with contextlib.suppress(Exception):
                t.zero_()
        out.clear()
        raise


def load_model(model_dir: str | os.PathLike[str], *, kms: KmsTarget, device: str | torch.device = "cpu",
               attester: str = "auto", names: Sequence[str] | None = None, mock_key: Any = None,
               mock_measurement: bytes = bytes(48), gpus: str = "auto", hpke_suite: str = rc.DEFAULT_SUITE,
               workers: int | None = None, progress: Callable[[int], None] | None = None,
               report: LoadReport | None = None) -> dict[str, torch.Tensor]:
    """Attested key release + verified load: ``{name: tensor}`` on ``device``.

    ``attester``: ``"auto"`` (the TEE on this machine; never the mock), ``"snp"``, ``"tdx"``, or
    ``"mock"`` (UNSAFE, development only; needs ``mock_key``: an ``UnsafeMockPlatform`` or its
    key file, and reports ``mock_measurement``).  ``names``: only these tensors.  ``progress``:
    called with byte counts as shards finish.  Raises :class:`KeyReleaseDenied` (with the
    server's reason), :class:`KeyServiceUnavailable`, :class:`ReleaseResponseError`,
    ``IntegrityError``; on any failure no tensor is returned and the key is wiped.
    """
    t0 = time.perf_counter()
    with release_key(model_dir, kms=kms, attester=attester, mock_key=mock_key, mock_measurement=mock_measurement,
                     gpus=gpus, hpke_suite=hpke_suite) as (key, info):
        t1 = time.perf_counter()
        if progress is None:
            from ._open import load_sealed

            tensors = load_sealed(model_dir, key, device=device, names=names, expected_model_id=info.model_id,
                                  expected_model_version=info.model_version, workers=workers)
        else:
            tensors = _load_with_progress(model_dir, key, device, names, model_id=info.model_id,
                                          model_version=info.model_version, progress=progress)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        t2 = time.perf_counter()
    if report is not None:
        report.model_id, report.model_version, report.release = info.model_id, info.model_version, info
        report.tensors = len(tensors)
        report.bytes = sum(t.numel() * t.element_size() for t in tensors.values())
        report.release_seconds, report.load_seconds = t1 - t0, t2 - t1
    return tensors


def verified_files(model_dir: str | os.PathLike[str], key: DataKey | LocalKey, *, max_bytes: int = 256 << 20) -> dict[str, bytes]:
    """The sealed directory's pass-through files (config, tokenizer ...), read into memory and
    checked against their keyed MACs in the authenticated manifest.  ``IntegrityError`` if any
    file is missing, altered or larger than ``max_bytes``."""
    import hashlib
    import hmac

    from . import _format as F
    from ._manifest import authenticate_manifest

    p = Path(model_dir)
    am = authenticate_manifest(read_manifest(p), key)
    try:
        out: dict[str, bytes] = {}
        for fe in am.manifest.files:
            if fe.size > max_bytes:
                raise IntegrityError()
            try:
                with open(p / fe.name, "rb") as fh:
                    data = fh.read(fe.size + 1)
            except OSError:
                raise IntegrityError() from None
            if len(data) != fe.size or not hmac.compare_digest(F.file_mac(am.mac_key, fe.name, hashlib.sha256(data)),
                                                               fe.mac):
                raise IntegrityError()
            out[fe.name] = data
        return out
    finally:
        am.close()

