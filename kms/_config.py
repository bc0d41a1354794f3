"""Key-service configuration: a YAML file plus ``WEIGHTSEAL_KMS_*`` environment overrides,
validated strictly (unknown keys, wrong types and missing production settings raise
``ConfigError(reason="config.invalid")``).

Every leaf key has an environment override named ``WEIGHTSEAL_KMS_`` + the upper-cased path
joined by ``_`` (``vault.address`` -> ``WEIGHTSEAL_KMS_VAULT_ADDRESS``,
``tls.client_ca`` -> ``WEIGHTSEAL_KMS_TLS_CLIENT_CA``).  Lists in the environment are
comma-separated; booleans are ``true``/``false``/``1``/``0``.  An unknown ``WEIGHTSEAL_KMS_*``
variable is an error (a typo must not silently fall back to a default).

See ``deploy/kms.production.example.yaml`` / the README for every key.  Relative paths in the file are
resolved against the file's directory.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import nacl.signing

from ._errors import ConfigError

__all__ = [
    "KmsConfig",
    "TlsConfig",
    "AuthConfig",
    "VaultConfig",
    "KeysConfig",
    "AuditConfig",
    "MetricsConfig",
    "AttestationConfig",
    "load_config",
    "ENV_PREFIX",
    "load_or_create_signing_key",
    "load_or_create_nonce_secret",
    "write_secret_file",
]

ENV_PREFIX = "WEIGHTSEAL_KMS_"
_MAX_CONFIG = 1 << 20


def _bad(msg: str) -> NoReturn:
    raise ConfigError(msg, reason="config.invalid")


@dataclass(frozen=True)
class TlsConfig:
    cert: str | None = None  # server certificate chain (PEM)
    key: str | None = None  # server private key (PEM)
    client_ca: str | None = None  # CA that issues admin/owner client certificates
    insecure: bool = False  # plaintext RELEASE port (development only; refused outside --dev)


@dataclass(frozen=True)
class AuthConfig:
    admins: tuple[str, ...] = ()  # identities (SAN URI or CN) allowed to read audit/all models


@dataclass(frozen=True)
class VaultConfig:
    address: str | None = None
    ca_cert: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    secret_id_file: str | None = None
    approle_mount: str = "approle"
    transit_mount: str = "weightseal-transit"
    kv_mount: str = "weightseal-kv"
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class KeysConfig:
    signing_key: str = "service-signing.key"  # Ed25519 seed (hex), 0600, created if absent
    nonce_secret: str = "nonce-secret.key"  # noqa: S105 - 32-byte MAC secret (hex) shared by replicas


@dataclass(frozen=True)
class AuditConfig:
    path: str = "audit.jsonl"
    replica: str = ""
    checkpoint_every: int = 100


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None  # "host:port" for the Prometheus HTTP endpoint; None disables


@dataclass(frozen=True)
class AttestationConfig:
    mock_keys: tuple[str, ...] = ()  # hex Ed25519 keys of trusted mock platforms (dev); empty = any
    # Intel TDX collateral (TCB Info, QE Identity, CRLs -> tcb_status): one set per FMSPC in
    # <dir>/<fmspc hex>/ (weightseal.attest.TdxCollateralDir), read afresh on every request ...
    tdx_collateral_dir: str | None = None
    tdx_collateral_partial: bool = False  # accept sets without QE Identity / CRLs (deliberate)
    # ... or fetched from Intel PCS / a PCCS with the same API (network; cached until nextUpdate);
    # the Intel root CA CRL from tdx_root_crl_url (default: Intel's; a PCCS serves it at
    # <pccs>/sgx/certification/v4/rootcacrl)
    tdx_pcs_url: str | None = None
    tdx_root_crl_url: str | None = None
    # NVIDIA RIMs (driver and VBIOS, every version in the fleet) to verify GPU measurements ...
    gpu_rim_dir: str | None = None
    # ... or fetched from NVIDIA's RIM service (network; https://rim.attestation.nvidia.com/v1/rim/
    # or a mirror), cached in memory and in gpu_rim_cache_dir, refetched daily
    gpu_rim_service_url: str | None = None
    gpu_rim_service_key_file: str | None = None  # sent as "Authorization: Bearer <key>"
    gpu_rim_service_ca_file: str | None = None  # a mirror's private CA (default: system store)
    gpu_rim_cache_dir: str | None = None
    # NVIDIA OCSP for the GPUs' device certificate chains (network; https://ocsp.ndis.nvidia.com
    # or a mirror): revoked -> attest.gpu.revoked, no usable answer -> attest.gpu.ocsp
    gpu_ocsp_url: str | None = None
    gpu_ocsp_ca_file: str | None = None
    gpu_ocsp_nonce: bool = True  # require the responder to echo a fresh nonce
    # AMD KDS (https://kdsintf.amd.com) for VCEKs a guest does not supply (network), and an
    # on-disk cache for them
    snp_kds_url: str | None = None
    snp_kds_cache_dir: str | None = None
    # AMD ARK CRLs (revocation of the pinned ASK/ASVK): files <product>_<vcek|vlek>.crl the
    # operator refreshes (weightseal.attest.SnpCrlDir) ...
    snp_crl_dir: str | None = None
    # ... or fetched from snp_kds_url (refreshed hourly, cached in snp_kds_cache_dir).  Either
    # way every SNP request needs a current CRL for its chain (attest.snp.crl[_expired]).
    snp_crl_from_kds: bool = False


@dataclass(frozen=True)
class KmsConfig:
    listen: str = "127.0.0.1:8443"  # release port (TEEs): server TLS
    admin_listen: str = "127.0.0.1:8444"  # admin/audit port: mutual TLS required
    dev: bool = False
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    vault: VaultConfig = field(default_factory=VaultConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    attestation: AttestationConfig = field(default_factory=AttestationConfig)
    nonce_ttl_seconds: float = 60.0
    shutdown_grace_seconds: float = 10.0
    max_workers: int = 16
    log_json: bool = True

    def validate(self) -> KmsConfig:
        _hostport(self.listen, "listen")
        _hostport(self.admin_listen, "admin_listen")
        if self.metrics.listen is not None:
            _hostport(self.metrics.listen, "metrics.listen")
        if not 0 < self.nonce_ttl_seconds <= 3600:
            _bad("nonce_ttl_seconds must be in (0, 3600]")
        if not 0 <= self.shutdown_grace_seconds <= 600:
            _bad("shutdown_grace_seconds must be in [0, 600]")
        if not 1 <= self.max_workers <= 1024:
            _bad("max_workers must be in [1, 1024]")
        if not 1 <= self.audit.checkpoint_every <= 1_000_000:
            _bad("audit.checkpoint_every must be in [1, 1000000]")
        for k in self.attestation.mock_keys:
            if len(k) != 64 or any(c not in "0123456789abcdefABCDEF" for c in k):
                _bad("attestation.mock_keys entries must be 64 hex digits")
        att = self.attestation
        if att.tdx_collateral_dir and att.tdx_pcs_url:
            _bad("attestation.tdx_collateral_dir and attestation.tdx_pcs_url are exclusive")
        if att.tdx_root_crl_url and not att.tdx_pcs_url:
            _bad("attestation.tdx_root_crl_url needs attestation.tdx_pcs_url")
        if att.gpu_rim_dir and att.gpu_rim_service_url:
            _bad("attestation.gpu_rim_dir and attestation.gpu_rim_service_url are exclusive")
        for name in ("gpu_rim_service_key_file", "gpu_rim_service_ca_file", "gpu_rim_cache_dir"):
            if getattr(att, name) and not att.gpu_rim_service_url:
                _bad(f"attestation.{name} needs attestation.gpu_rim_service_url")
        if att.gpu_ocsp_ca_file and not att.gpu_ocsp_url:
            _bad("attestation.gpu_ocsp_ca_file needs attestation.gpu_ocsp_url")
        for name in ("tdx_pcs_url", "tdx_root_crl_url", "snp_kds_url", "gpu_rim_service_url", "gpu_ocsp_url"):
            url = getattr(att, name)
            if url is not None and not url.startswith("https://"):
                _bad(f"attestation.{name} must be an https:// URL")
        if att.snp_kds_cache_dir and not att.snp_kds_url:
            _bad("attestation.snp_kds_cache_dir needs attestation.snp_kds_url")
        if att.snp_crl_from_kds and not att.snp_kds_url:
            _bad("attestation.snp_crl_from_kds needs attestation.snp_kds_url")
        if att.snp_crl_from_kds and att.snp_crl_dir:
            _bad("attestation.snp_crl_dir and attestation.snp_crl_from_kds are exclusive")
        if self.tls.insecure and not self.dev:
            _bad("tls.insecure is only allowed in development mode")
        if not (self.tls.cert and self.tls.key and self.tls.client_ca):
            _bad("tls.cert, tls.key and tls.client_ca are required (the admin port always uses mutual TLS)")
        if not self.dev:
            if not self.vault.address:
                _bad("vault.address is required outside development mode")
            if not self.vault.role_id or not (self.vault.secret_id or self.vault.secret_id_file):
                _bad("vault.role_id and vault.secret_id (or secret_id_file) are required outside development mode")
        return self


def _hostport(v: str, where: str) -> None:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        _bad(f"{where} must be host:port")


# -- loading -------------------------------------------------------------------------------------

def _coerce(value: Any, typ: Any, where: str, from_env: bool) -> Any:
    t = str(typ)
    if t in ("bool",):
        if from_env and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes"):
                return True
            if low in ("0", "false", "no"):
                return False
        if not isinstance(value, bool):
            _bad(f"{where} must be true or false")
        return value
    if t == "int":
        if from_env and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            _bad(f"{where} must be an integer")
        return value
    if t == "float":
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                _bad(f"{where} must be a number")
        if isinstance(value, bool) or not isinstance(value, int | float):
            _bad(f"{where} must be a number")
        return float(value)
    if t in ("str", "str | None"):
        if value is None and t == "str | None":
            return None
        if not isinstance(value, str) or len(value) > 4096:
            _bad(f"{where} must be a string")
        return value
    if t == "tuple[str, ...]":
        if from_env and isinstance(value, str):
            return tuple(x.strip() for x in value.split(",") if x.strip())
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            _bad(f"{where} must be a list of strings")
        return tuple(value)
    _bad(f"{where}: unsupported type {t}")  # pragma: no cover


def _build(cls: Any, data: Mapping[str, Any], where: str, env: Mapping[str, str], used: set[str]) -> Any:
    if not isinstance(data, Mapping):
        _bad(f"{where or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in data:
        if k not in fields:
            _bad(f"unknown config key {where + k!r}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = where + name
        if path in _NOT_FROM_FILE_OR_ENV:
            if name in data:
                _bad(f"{path!r} cannot be set in a config file; use `weightseal kms serve --dev`")
            continue  # an environment variable for it stays unused and is reported as unknown
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
            sub = _SECTIONS[name]
            kwargs[name] = _build(sub, data.get(name) or {}, path + ".", env, used)
            continue
        env_name = ENV_PREFIX + path.replace(".", "_").upper()
        if env_name in env:
            used.add(env_name)
            kwargs[name] = _coerce(env[env_name], f.type, env_name, True)
        elif name in data:
            kwargs[name] = _coerce(data[name], f.type, path, False)
    return cls(**kwargs)


# Development mode (mock evidence allowed) is reachable only by asking for it by name on the
# command line or in code (``load_config(..., dev=True)``), never from a file or the environment,
# so a stray config key or variable cannot turn a production replica into a development one.
_NOT_FROM_FILE_OR_ENV = frozenset({"dev"})

_SECTIONS: dict[str, Any] = {
    "tls": TlsConfig,
    "auth": AuthConfig,
    "vault": VaultConfig,
    "keys": KeysConfig,
    "audit": AuditConfig,
    "metrics": MetricsConfig,
    "attestation": AttestationConfig,
}

_PATH_FIELDS = {("tls", "cert"), ("tls", "key"), ("tls", "client_ca"), ("vault", "ca_cert"), ("vault", "secret_id_file"),
                ("keys", "signing_key"), ("keys", "nonce_secret"), ("audit", "path"),
                ("attestation", "tdx_collateral_dir"), ("attestation", "gpu_rim_dir"),
                ("attestation", "snp_kds_cache_dir"), ("attestation", "snp_crl_dir"),
                ("attestation", "gpu_rim_service_key_file"), ("attestation", "gpu_rim_service_ca_file"),
                ("attestation", "gpu_rim_cache_dir"), ("attestation", "gpu_ocsp_ca_file")}


def _resolve_paths(cfg: KmsConfig, base: Path) -> KmsConfig:
    repl: dict[str, Any] = {}
    for section, name in _PATH_FIELDS:
        sec = getattr(cfg, section)
        v = getattr(sec, name)
        if isinstance(v, str) and v and not os.path.isabs(v):
            repl[section] = dataclasses.replace(repl.get(section, getattr(cfg, section)), **{name: str(base / v)})
    return dataclasses.replace(cfg, **repl)


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> KmsConfig:
    """Load and validate.  ``path`` None: defaults + environment only.  ``env`` defaults to
    ``os.environ``.  ``overrides``: top-level fields set by the caller (e.g. ``dev=True``)."""
    import yaml

    env = dict(os.environ if env is None else env)
    data: Any = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        base = p.resolve().parent
        try:
            with p.open("rb") as fh:
                raw = fh.read(_MAX_CONFIG + 1)
        except OSError as exc:
            _bad(f"cannot read config file {p}: {exc.strerror}")
        if len(raw) > _MAX_CONFIG:
            _bad("config file too large")
        try:
            data = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            _bad(f"config file is not valid YAML ({type(exc).__name__})")
    if not isinstance(data, dict):
        _bad("config must be a mapping")
    our_env = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    used: set[str] = set()
    cfg = _build(KmsConfig, data, "", our_env, used)
    unknown = sorted(set(our_env) - used)
    if unknown:
        _bad(f"unknown environment variable(s): {', '.join(unknown)}")
    if overrides:
        for k in overrides:
            if k not in {f.name for f in dataclasses.fields(KmsConfig)}:
                _bad(f"unknown override {k!r}")
        cfg = dataclasses.replace(cfg, **overrides)
    return _resolve_paths(cfg, base).validate()


# -- service key files -----------------------------------------------------------------------------

def write_secret_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Create ``path`` with mode 0600 (fails if it exists)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _read_secret_hex(path: Path, nbytes: int, what: str) -> bytes:
    try:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077:
            _bad(f"{what} file {path} must not be readable by group/others (chmod 600)")
        raw = path.read_bytes()[: 4 * nbytes + 64]
        val = bytes.fromhex(raw.decode("ascii").strip())
    except OSError as exc:
        _bad(f"cannot read {what} file {path}: {exc.strerror}")
    except (UnicodeDecodeError, ValueError):
        _bad(f"{what} file {path} must hold {nbytes} bytes as hex")
    if len(val) != nbytes:
        _bad(f"{what} file {path} must hold {nbytes} bytes as hex")
    return val


def load_or_create_signing_key(path: str | os.PathLike[str], *, create: bool = True) -> nacl.signing.SigningKey:
    """The service's Ed25519 response-signing key (hex seed file, 0600; created if absent)."""
    p = Path(path)
    if not p.exists():
        if not create:
            _bad(f"service signing key {p} does not exist (run `weightseal kms keygen`)")
        write_secret_file(p, nacl.signing.SigningKey.generate().encode().hex().encode() + b"\n")
    return nacl.signing.SigningKey(_read_secret_hex(p, 32, "signing key"))


def load_or_create_nonce_secret(path: str | os.PathLike[str], *, create: bool = True) -> bytes:
    """The nonce MAC secret shared by all replicas (hex file, 0600; created if absent)."""
    p = Path(path)
    if not p.exists():
        if not create:
            _bad(f"nonce secret {p} does not exist (run `weightseal kms keygen`)")
        write_secret_file(p, secrets.token_bytes(32).hex().encode() + b"\n")
    return _read_secret_hex(p, 32, "nonce secret")
