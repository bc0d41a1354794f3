"""Model registry: one KV v2 entry per model under ``<kv_mount>/data/models/<model_id>``.

The entry is a JSON document (``format: "weightseal.model.v1"``) holding the owner identity, the
release policy (canonical JSON) with its digest and version, the wrapped DEK of every model
version and the revocation flag.  Nothing in it is secret: DEKs are stored only wrapped by the
model's Transit key.

Concurrency: replicas share Vault, so every write uses KV v2 check-and-set.  ``create`` writes
with ``cas=0`` (only if absent); ``update`` writes with ``cas=<the KV version the caller read>``,
so of two replicas that read version N and both write, exactly one succeeds and the other gets
``registry.conflict`` (re-read and retry).

What comes back from Vault is parsed strictly: unknown/missing fields, wrong types or a model id
that disagrees with the path raise ``KmsError(reason="registry.corrupt")``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from typing import Any

import hvac
import hvac.exceptions

from ._errors import KmsError, ModelNotFoundError, VaultError
from ._vault import VaultBackend, _validate_mount, validate_model_id, vault_errors

__all__ = ["ModelRecord", "VersionRecord", "Registry", "REGISTRY_FORMAT", "utc_now"]

REGISTRY_FORMAT = "weightseal.model.v1"
_PREFIX = "models"
_DIGEST_RE = re.compile(r"^[A-Za-z0-9_.:+/=-]{1,200}$")
_WRAPPED_RE = re.compile(r"^vault:v[1-9][0-9]{0,8}:[A-Za-z0-9+/]{16,8192}={0,2}$")
_MAX_POLICY = 256 * 1024
_MAX_VERSIONS = 10_000


def utc_now() -> str:
    """RFC 3339 UTC timestamp with millisecond precision."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _corrupt(msg: str) -> KmsError:
    return KmsError(f"registry entry invalid: {msg}", reason="registry.corrupt")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ts(v: object, what: str) -> str:
    if not isinstance(v, str) or len(v) > 40:
        raise _corrupt(f"{what} must be an RFC 3339 string")
    try:
        _dt.datetime.fromisoformat(v)
    except ValueError:
        raise _corrupt(f"{what} must be an RFC 3339 string") from None
    return v


@dataclasses.dataclass
class VersionRecord:
    wrapped_dek: str
    created_at: str
    retired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"wrapped_dek": self.wrapped_dek, "created_at": self.created_at,
                "retired": self.retired}

    @classmethod
    def from_json(cls, obj: object) -> VersionRecord:
        if not isinstance(obj, dict) or set(obj) != {"wrapped_dek", "created_at", "retired"}:
            raise _corrupt("version entry must have exactly wrapped_dek, created_at, retired")
        w = obj["wrapped_dek"]
        if not isinstance(w, str) or _WRAPPED_RE.fullmatch(w) is None:
            raise _corrupt("wrapped_dek is not a vault:vN: ciphertext")
        if not isinstance(obj["retired"], bool):
            raise _corrupt("retired must be a boolean")
        return cls(wrapped_dek=w, created_at=_ts(obj["created_at"], "created_at"),
                   retired=obj["retired"])


@dataclasses.dataclass
class ModelRecord:
    """One registered model.  ``kv_version`` is the KV v2 version this record was read at (0 for
    a record not yet stored); pass it to :meth:`Registry.update` as ``expected_version``."""

    model_id: str
    owner: str
    policy_json: str
    policy_digest: str
    policy_version: int
    versions: dict[int, VersionRecord]
    latest_version: int
    revoked: bool = False
    created_at: str = dataclasses.field(default_factory=utc_now)
    updated_at: str = dataclasses.field(default_factory=utc_now)
    kv_version: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.policy_json, bytes | bytearray):
            try:
                self.policy_json = bytes(self.policy_json).decode("utf-8")
            except UnicodeDecodeError:
                raise _corrupt("policy_json must be UTF-8") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REGISTRY_FORMAT,
            "model_id": self.model_id,
            "owner": self.owner,
            "policy_json": self.policy_json,
            "policy_digest": self.policy_digest,
            "policy_version": self.policy_version,
            "versions": {str(k): v.to_json() for k, v in sorted(self.versions.items())},
            "latest_version": self.latest_version,
            "revoked": self.revoked,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def validate(self) -> None:
        """Check the record's own consistency (raises ``registry.corrupt``)."""
        self._check(self.to_json())

    @staticmethod
    def _check(obj: dict[str, Any]) -> None:
        expected = {"format", "model_id", "owner", "policy_json", "policy_digest",
                    "policy_version", "versions", "latest_version", "revoked", "created_at",
                    "updated_at"}
        if set(obj) != expected:
            raise _corrupt("unexpected or missing fields")
        if obj["format"] != REGISTRY_FORMAT:
            raise _corrupt("unknown format")
        try:
            validate_model_id(obj["model_id"])
        except KmsError:
            raise _corrupt("model_id invalid") from None
        owner = obj["owner"]
        if not isinstance(owner, str) or not (0 < len(owner) <= 1024):
            raise _corrupt("owner must be a non-empty string")
        pj = obj["policy_json"]
        if not isinstance(pj, str) or len(pj) > _MAX_POLICY:
            raise _corrupt("policy_json must be a string")
        pd = obj["policy_digest"]
        if not isinstance(pd, str) or _DIGEST_RE.fullmatch(pd) is None:
            raise _corrupt("policy_digest malformed")
        for name in ("policy_version", "latest_version"):
            if not _is_int(obj[name]) or obj[name] < 0:
                raise _corrupt(f"{name} must be a non-negative integer")
        if not isinstance(obj["revoked"], bool):
            raise _corrupt("revoked must be a boolean")
        vs = obj["versions"]
        if not isinstance(vs, dict) or len(vs) > _MAX_VERSIONS:
            raise _corrupt("versions must be an object")
        for k in vs:
            if not isinstance(k, str) or re.fullmatch(r"[1-9][0-9]{0,8}", k) is None:
                raise _corrupt("version numbers must be positive integers")
        if vs and obj["latest_version"] not in {int(k) for k in vs}:
            raise _corrupt("latest_version not among versions")
        if not vs and obj["latest_version"] != 0:
            raise _corrupt("latest_version without versions")
        _ts(obj["created_at"], "created_at")
        _ts(obj["updated_at"], "updated_at")

    @classmethod
    def from_json(cls, obj: object, *, kv_version: int = 0) -> ModelRecord:
        if not isinstance(obj, dict):
            raise _corrupt("entry must be a JSON object")
        cls._check(obj)
        versions = {int(k): VersionRecord.from_json(v) for k, v in obj["versions"].items()}
        return cls(model_id=obj["model_id"], owner=obj["owner"], policy_json=obj["policy_json"],
                   policy_digest=obj["policy_digest"], policy_version=obj["policy_version"],
                   versions=versions, latest_version=obj["latest_version"],
                   revoked=obj["revoked"], created_at=obj["created_at"],
                   updated_at=obj["updated_at"], kv_version=kv_version)


class Registry:
    """Model records in KV v2.  ``Registry(backend)`` reuses the backend's client and KV mount;
    ``Registry(client, kv_mount=...)`` takes an ``hvac.Client`` directly."""

    def __init__(self, backend_or_client: VaultBackend | hvac.Client, *,
                 kv_mount: str | None = None) -> None:
        if isinstance(backend_or_client, VaultBackend):
            self.client = backend_or_client.client
            mount = kv_mount or backend_or_client.kv_mount
        else:
            self.client = backend_or_client
            mount = kv_mount or "weightseal-kv"
        self.kv_mount = _validate_mount(mount)

    def __repr__(self) -> str:
        return f"Registry(kv_mount={self.kv_mount!r})"

    @staticmethod
    def _path(model_id: str) -> str:
        return f"{_PREFIX}/{validate_model_id(model_id)}"

    def get(self, model_id: str) -> ModelRecord:
        path = self._path(model_id)
        with vault_errors("registry read"):
            try:
                resp = self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.kv_mount, raise_on_deleted_version=True)
            except hvac.exceptions.InvalidPath:
                raise ModelNotFoundError("no such model") from None
        try:
            data = resp["data"]["data"]
            meta = resp["data"]["metadata"]
            kv_version = meta["version"]
        except (KeyError, TypeError):
            raise _corrupt("KV response malformed") from None
        if not _is_int(kv_version) or kv_version < 1:
            raise _corrupt("KV version malformed")
        if not isinstance(data, dict) or set(data) != {"record"} or not isinstance(data["record"], str):
            raise _corrupt("KV entry must hold one 'record' string")
        if len(data["record"]) > 2 * _MAX_POLICY + 4 * 1024 * 1024:
            raise _corrupt("entry too large")
        try:
            obj = json.loads(data["record"])
        except (json.JSONDecodeError, RecursionError):
            raise _corrupt("record is not JSON") from None
        rec = ModelRecord.from_json(obj, kv_version=kv_version)
        if rec.model_id != model_id:
            raise _corrupt("model_id does not match its path")
        return rec

    def _write(self, record: ModelRecord, cas: int) -> int:
        record.validate()
        body = json.dumps(record.to_json(), sort_keys=True, separators=(",", ":"))
        with vault_errors("registry write"):
            try:
                resp = self.client.secrets.kv.v2.create_or_update_secret(
                    path=self._path(record.model_id), secret={"record": body}, cas=cas,
                    mount_point=self.kv_mount)
            except hvac.exceptions.InvalidRequest as exc:
                text = " ".join(str(e) for e in (getattr(exc, "errors", None) or [])).lower()
                if "check-and-set" in text or "cas" in text:
                    if cas == 0:
                        raise KmsError("model already registered", reason="model.exists") from None
                    raise KmsError("registry entry changed concurrently; re-read and retry",
                                   reason="registry.conflict") from None
                raise VaultError("registry write refused") from None
        try:
            version = resp["data"]["version"]
        except (KeyError, TypeError):
            raise _corrupt("KV write response malformed") from None
        if not _is_int(version):
            raise _corrupt("KV write response malformed")
        record.kv_version = version
        return int(version)

    def create(self, record: ModelRecord) -> ModelRecord:
        """Store a new model; ``model.exists`` if the id is taken.  Sets ``record.kv_version``."""
        self._write(record, cas=0)
        return record

    def update(self, record: ModelRecord, expected_version: int | None = None) -> ModelRecord:
        """Overwrite a model only if its KV version is still ``expected_version`` (default:
        ``record.kv_version``); ``registry.conflict`` otherwise.  Bumps ``updated_at``."""
        if expected_version is None:
            expected_version = record.kv_version
        if not _is_int(expected_version) or expected_version < 1:
            raise KmsError("update needs the KV version the record was read at",
                           reason="registry.conflict")
        record.updated_at = utc_now()
        self._write(record, cas=expected_version)
        return record

    def list_ids(self) -> list[str]:
        with vault_errors("registry list"):
            try:
                resp = self.client.secrets.kv.v2.list_secrets(path=_PREFIX, mount_point=self.kv_mount)
            except hvac.exceptions.InvalidPath:
                return []
        try:
            keys = resp["data"]["keys"]
        except (KeyError, TypeError):
            raise _corrupt("KV list response malformed") from None
        if not isinstance(keys, list):
            raise _corrupt("KV list response malformed")
        ids = []
        for k in keys:
            if isinstance(k, str) and not k.endswith("/"):
                try:
                    ids.append(validate_model_id(k))
                except KmsError:
                    continue  # not ours: ignore foreign entries rather than fail the listing
        return sorted(ids)

    def list(self, owner: str | None = None) -> list[ModelRecord]:  # noqa: A003
        out = []
        for mid in self.list_ids():
            try:
                rec = self.get(mid)
            except ModelNotFoundError:
                continue  # deleted between list and read
            if owner is None or rec.owner == owner:
                out.append(rec)
        return out
