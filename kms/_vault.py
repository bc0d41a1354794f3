"""Narrow interface over Vault/OpenBao Transit (the KEKs) for the key service.

The key service never holds a KEK.  Each model has one Transit key, named exactly like the model
id, of type ``aes256-gcm96``, ``derived=true`` (the model id is the derivation context, so a
wrapped DEK of one model cannot be unwrapped under another model's id), ``exportable=false`` and
``allow_plaintext_backup=false``.  DEKs come from ``datakey/plaintext`` and are kept only in
their wrapped ``vault:vN:...`` form (in the registry).

Design notes (after Tink's ``_hcvault_kms_aead.py``):

* No global client: a :class:`VaultBackend` is built from an ``hvac.Client`` the caller owns.
* Strict input checks: model ids must match :data:`MODEL_ID_RE` (they become a Vault path
  segment), wrapped DEKs must match :data:`WRAPPED_RE`.
* Every hvac/requests failure is translated into the key-service hierarchy:
  unreachable / timeout / 5xx / sealed -> :class:`VaultUnavailableError` (``vault.unavailable``),
  403 -> ``vault.forbidden``, anything else -> :class:`VaultError`.  Messages carry the
  operation and Vault's error strings, never key material or ciphertext.
* Plaintext DEKs are returned as ``bytearray`` so the caller can overwrite them when done.  The
  JSON/base64 decoding in hvac and here necessarily creates short-lived immutable copies that
  Python cannot wipe; that is a limit of doing this in Python, documented rather than hidden.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import hvac
import hvac.exceptions
import requests

from ._errors import KmsError, VaultError, VaultUnavailableError

__all__ = [
    "MODEL_ID_RE",
    "WRAPPED_RE",
    "VaultBackend",
    "TokenRenewer",
    "login_approle",
    "validate_model_id",
    "vault_errors",
]

_log = logging.getLogger(__name__)

#: Model ids: lower-case, start AND end with a letter or digit (a Transit key name must end in a
#: word character), at most 128 characters.  They are used verbatim as the Transit key name and
#: as the registry path segment, so nothing else is accepted.
MODEL_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")
#: A Transit ciphertext: ``vault:v<version>:<base64>`` (bounded, no whitespace).
WRAPPED_RE = re.compile(r"^vault:v([1-9][0-9]{0,8}):[A-Za-z0-9+/]{16,8192}={0,2}$")
_MOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:/[A-Za-z0-9][A-Za-z0-9_-]{0,63}){0,3}$")

DEK_BITS = 256


def validate_model_id(model_id: object) -> str:
    """Return ``model_id`` if it is a valid model id, else raise ``model.invalid_id``."""
    if not isinstance(model_id, str) or MODEL_ID_RE.fullmatch(model_id) is None:
        raise KmsError("model id must match [a-z0-9][a-z0-9._-]*[a-z0-9], at most 128 chars",
                       reason="model.invalid_id")
    return model_id


def _validate_mount(mount: str) -> str:
    if not isinstance(mount, str) or _MOUNT_RE.fullmatch(mount) is None:
        raise KmsError("invalid Vault mount path", reason="config.invalid")
    return mount


def _wrapped_version(wrapped: object) -> int:
    if not isinstance(wrapped, str):
        raise VaultError("wrapped DEK must be a 'vault:vN:...' string", reason="vault.bad_wrapped")
    m = WRAPPED_RE.fullmatch(wrapped)
    if m is None:
        raise VaultError("wrapped DEK is not a 'vault:vN:...' Transit ciphertext",
                         reason="vault.bad_wrapped")
    return int(m.group(1))


def _errors_text(exc: hvac.exceptions.VaultError) -> str:
    errs = getattr(exc, "errors", None)
    if isinstance(errs, list | tuple) and errs:
        text = "; ".join(str(e).strip() for e in errs)
    else:
        text = type(exc).__name__
    text = " ".join(text.split())
    return text[:200]


@contextlib.contextmanager
def vault_errors(op: str) -> Iterator[None]:
    """Translate hvac/requests exceptions raised inside the block into our error hierarchy."""
    try:
        yield
    except (VaultError, KmsError):
        raise
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise VaultUnavailableError(f"{op}: Vault unreachable ({type(exc).__name__})") from None
    except (hvac.exceptions.VaultDown, hvac.exceptions.BadGateway,
            hvac.exceptions.VaultNotInitialized) as exc:
        raise VaultUnavailableError(f"{op}: Vault unavailable or sealed ({_errors_text(exc)})") from None
    except hvac.exceptions.Forbidden:
        raise VaultError(f"{op}: permission denied by Vault policy", reason="vault.forbidden") from None
    except hvac.exceptions.Unauthorized:
        raise VaultError(f"{op}: Vault token missing or invalid", reason="vault.unauthenticated") from None
    except hvac.exceptions.RateLimitExceeded:
        raise VaultUnavailableError(f"{op}: Vault rate limit exceeded") from None
    except hvac.exceptions.InternalServerError as exc:
        raise VaultError(f"{op}: Vault internal error ({_errors_text(exc)})") from None
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"{op}: {_errors_text(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise VaultUnavailableError(f"{op}: transport error ({type(exc).__name__})") from None
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VaultError(f"{op}: malformed Vault response ({type(exc).__name__})",
                         reason="vault.bad_response") from None


def _ctx(model_id: str) -> str:
    return base64.b64encode(model_id.encode("ascii")).decode("ascii")


def _data(resp: Any) -> dict[str, Any]:
    if not isinstance(resp, dict) or not isinstance(resp.get("data"), dict):
        raise VaultError("malformed Vault response (no data)", reason="vault.bad_response")
    data: dict[str, Any] = resp["data"]
    return data


def _b64_to_bytearray(value: object, expected_len: int | None = None) -> bytearray:
    if not isinstance(value, str):
        raise VaultError("malformed Vault response", reason="vault.bad_response")
    try:
        out = bytearray(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise VaultError("malformed Vault response (base64)", reason="vault.bad_response") from None
    if expected_len is not None and len(out) != expected_len:
        out[:] = bytes(len(out))
        raise VaultError("Vault returned a key of the wrong length", reason="vault.bad_response")
    return out


class VaultBackend:
    """Transit operations for model KEKs/DEKs.  Thread-safe as far as the hvac client is."""

    def __init__(self, client: hvac.Client, *, transit_mount: str = "weightseal-transit",
                 kv_mount: str = "weightseal-kv") -> None:
        self.client = client
        self.transit_mount = _validate_mount(transit_mount)
        self.kv_mount = _validate_mount(kv_mount)

    def __repr__(self) -> str:
        return f"VaultBackend(transit_mount={self.transit_mount!r}, kv_mount={self.kv_mount!r})"

    def __reduce__(self) -> Any:
        raise TypeError("VaultBackend holds a Vault client and cannot be pickled")

    # ---- keys -------------------------------------------------------------------------------
    def ensure_model_key(self, model_id: str) -> None:
        """Create the model's Transit key if missing; check an existing one has safe settings."""
        validate_model_id(model_id)
        with vault_errors("transit create key"):
            self.client.secrets.transit.create_key(
                model_id, key_type="aes256-gcm96", derived=True, exportable=False,
                allow_plaintext_backup=False, mount_point=self.transit_mount)
        info = self._read_key(model_id)
        # Creating an existing key is a no-op in Transit, so check that the key we will use has
        # the properties we rely on (someone may have created it by hand).
        if (info.get("type") != "aes256-gcm96" or info.get("derived") is not True
                or info.get("exportable") is not False
                or info.get("allow_plaintext_backup") is not False):
            raise VaultError("existing Transit key has unsafe settings (type/derived/exportable/"
                             "plaintext backup)", reason="vault.key_unsafe")

    def _read_key(self, model_id: str) -> dict[str, Any]:
        with vault_errors("transit read key"):
            try:
                resp = self.client.secrets.transit.read_key(model_id, mount_point=self.transit_mount)
            except hvac.exceptions.InvalidPath:
                raise VaultError("no Transit key for this model",
                                 reason="vault.key_not_found") from None
            return _data(resp)

    def key_info(self, model_id: str) -> dict[str, Any]:
        """``{"latest_version", "min_decryption_version", "min_encryption_version", "type",
        "derived", "exportable", "allow_plaintext_backup", "versions"}``"""
        validate_model_id(model_id)
        d = self._read_key(model_id)
        try:
            keys = d.get("keys") or {}
            return {
                "latest_version": int(d["latest_version"]),
                "min_decryption_version": int(d["min_decryption_version"]),
                "min_encryption_version": int(d.get("min_encryption_version", 0)),
                "type": str(d["type"]),
                "derived": bool(d["derived"]),
                "exportable": bool(d["exportable"]),
                "allow_plaintext_backup": bool(d["allow_plaintext_backup"]),
                "versions": sorted(int(k) for k in keys),
            }
        except (KeyError, TypeError, ValueError):
            raise VaultError("malformed Transit key info", reason="vault.bad_response") from None

    def rotate_key(self, model_id: str) -> int:
        """Add a key version; return the new latest version."""
        validate_model_id(model_id)
        with vault_errors("transit rotate"):
            self.client.secrets.transit.rotate_key(model_id, mount_point=self.transit_mount)
        return int(self.key_info(model_id)["latest_version"])

    def set_min_decryption_version(self, model_id: str, version: int) -> None:
        """Refuse unwrapping of DEKs wrapped under key versions older than ``version``."""
        validate_model_id(model_id)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise KmsError("min decryption version must be a positive integer",
                           reason="config.invalid")
        with vault_errors("transit config"):
            self.client.secrets.transit.update_key_configuration(
                model_id, min_decryption_version=version, mount_point=self.transit_mount)

    # ---- DEKs -------------------------------------------------------------------------------
    def generate_dek(self, model_id: str) -> tuple[bytearray, str]:
        """New 32-byte DEK: ``(plaintext bytearray, wrapped 'vault:vN:...')``."""
        validate_model_id(model_id)
        with vault_errors("transit datakey"):
            resp = self.client.secrets.transit.generate_data_key(
                model_id, key_type="plaintext", context=_ctx(model_id), bits=DEK_BITS,
                mount_point=self.transit_mount)
            d = _data(resp)
            wrapped = d["ciphertext"]
            plaintext = d["plaintext"]
        _wrapped_version(wrapped)
        dek = _b64_to_bytearray(plaintext, DEK_BITS // 8)
        del plaintext, d, resp
        return dek, wrapped

    def wrap_dek(self, model_id: str, dek: bytes | bytearray | memoryview) -> str:
        """Wrap a locally generated 32-byte DEK with the model's KEK (``transit/encrypt``)."""
        validate_model_id(model_id)
        if len(dek) != DEK_BITS // 8:
            raise KmsError("DEK must be 32 bytes", reason="config.invalid")
        b64 = base64.b64encode(bytes(dek)).decode("ascii")
        with vault_errors("transit encrypt"):
            resp = self.client.secrets.transit.encrypt_data(
                model_id, plaintext=b64, context=_ctx(model_id), mount_point=self.transit_mount)
            wrapped = _data(resp)["ciphertext"]
        del b64
        _wrapped_version(wrapped)
        return str(wrapped)

    def unwrap_dek(self, model_id: str, wrapped: str) -> bytearray:
        """Unwrap a DEK (Transit decrypt with the model id as context)."""
        validate_model_id(model_id)
        _wrapped_version(wrapped)
        with vault_errors("transit decrypt"):
            try:
                resp = self.client.secrets.transit.decrypt_data(
                    model_id, ciphertext=wrapped, context=_ctx(model_id),
                    mount_point=self.transit_mount)
            except hvac.exceptions.InvalidRequest:
                # Wrong context, wrong key, version below min_decryption_version, corrupted.
                # One opaque reason: no oracle beyond "did not unwrap".
                raise VaultError("wrapped DEK did not unwrap under this model's key",
                                 reason="vault.unwrap_failed") from None
            except hvac.exceptions.InvalidPath:
                raise VaultError("no Transit key for this model",
                                 reason="vault.key_not_found") from None
            plaintext = _data(resp)["plaintext"]
        dek = _b64_to_bytearray(plaintext, DEK_BITS // 8)
        del plaintext, resp
        return dek

    def rewrap_dek(self, model_id: str, wrapped: str) -> str:
        """Re-encrypt a wrapped DEK under the latest key version without exposing it."""
        validate_model_id(model_id)
        _wrapped_version(wrapped)
        with vault_errors("transit rewrap"):
            try:
                resp = self.client.secrets.transit.rewrap_data(
                    model_id, ciphertext=wrapped, context=_ctx(model_id),
                    mount_point=self.transit_mount)
            except hvac.exceptions.InvalidRequest:
                raise VaultError("wrapped DEK did not unwrap under this model's key",
                                 reason="vault.unwrap_failed") from None
            new = _data(resp)["ciphertext"]
        _wrapped_version(new)
        return str(new)

    @staticmethod
    def wrapped_version(wrapped: str) -> int:
        """The Transit key version N of a ``vault:vN:...`` string (strictly parsed)."""
        return _wrapped_version(wrapped)

    # ---- health -----------------------------------------------------------------------------
    def check_health(self) -> None:
        """Raise ``VaultUnavailableError`` unless Vault is reachable, initialised and unsealed."""
        with vault_errors("health"):
            resp = self.client.sys.read_health_status(method="GET")
        if isinstance(resp, dict):
            if resp.get("sealed") or not resp.get("initialized", False):
                raise VaultUnavailableError("health: Vault sealed or not initialised")
            return
        status = getattr(resp, "status_code", 0)
        if status not in (200, 429, 473):
            raise VaultUnavailableError(f"health: Vault status {status}")


# ---- authentication ---------------------------------------------------------------------------

def login_approle(address: str, role_id: str, secret_id: str, *, verify: bool | str = True,
                  timeout: float = 5.0, mount_point: str = "approle",
                  cert: tuple[str, str] | None = None) -> hvac.Client:
    """Log in with AppRole and return an authenticated client (short ``timeout``, in seconds)."""
    client = hvac.Client(url=address, verify=verify, timeout=timeout, cert=cert)
    with vault_errors("approle login"):
        try:
            client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                      mount_point=mount_point, use_token=True)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath):
            raise VaultError("AppRole login refused (bad role_id/secret_id)",
                             reason="vault.unauthenticated") from None
    return client


class TokenRenewer:
    """Keep a client's Vault token alive in a background thread.

    Every cycle it looks up the token's remaining TTL, sleeps ~2/3 of it, then renews it
    (``auth/token/renew-self``).  If renewal fails (token expired, max TTL reached, revoked) and a
    ``relogin`` callable is available -- given explicitly or built from AppRole ``role_id`` and
    ``secret_id`` -- it logs in again and installs the new token on the same client.  Failures
    are retried with a short back-off and never kill the thread; :meth:`stop` ends it.
    """

    def __init__(self, client: hvac.Client, *, role_id: str | None = None,
                 secret_id: str | None = None, relogin: Callable[[], str] | None = None,
                 approle_mount: str = "approle", min_interval: float = 1.0,
                 retry_interval: float = 5.0) -> None:
        self.client = client
        self._role_id = role_id
        self._secret_id = secret_id
        self._approle_mount = approle_mount
        if relogin is None and role_id is not None and secret_id is not None:
            relogin = self._approle_relogin
        self._relogin = relogin
        self.min_interval = float(min_interval)
        self.retry_interval = float(retry_interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.relogins = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"TokenRenewer(renewals={self.renewals}, relogins={self.relogins})"

    def __reduce__(self) -> Any:
        raise TypeError("TokenRenewer holds credentials and cannot be pickled")

    def _approle_relogin(self) -> str:
        assert self._role_id is not None and self._secret_id is not None
        resp = self.client.auth.approle.login(role_id=self._role_id, secret_id=self._secret_id,
                                              mount_point=self._approle_mount, use_token=True)
        return str(resp["auth"]["client_token"])

    def _ttl(self) -> float:
        with vault_errors("token lookup"):
            d = _data(self.client.auth.token.lookup_self())
            ttl = d.get("ttl")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
            raise VaultError("malformed token lookup", reason="vault.bad_response")
        return float(ttl)

    def renew_once(self) -> float:
        """Renew now (re-login on failure); return the seconds to wait before the next renewal."""
        try:
            with vault_errors("token renew"):
                resp = self.client.auth.token.renew_self()
                ttl = float(resp["auth"]["lease_duration"])
            self.renewals += 1
        except VaultUnavailableError:
            raise
        except VaultError:
            if self._relogin is None:
                raise
            with vault_errors("token relogin"):
                token = self._relogin()
            self.client.token = token
            self.relogins += 1
            ttl = self._ttl()
        if ttl <= 0:  # a root/non-expiring token: check again later
            return 3600.0
        return max(self.min_interval, ttl * 2.0 / 3.0)

    def _run(self) -> None:
        try:
            ttl = self._ttl()
            wait = 3600.0 if ttl <= 0 else max(self.min_interval, ttl * 2.0 / 3.0)
        except VaultError:
            wait = self.min_interval
        while not self._stop.wait(wait):
            try:
                wait = self.renew_once()
            except VaultError as exc:
                self.failures += 1
                _log.warning("Vault token renewal failed (%s); retrying", exc.reason)
                wait = self.retry_interval

    def start(self) -> TokenRenewer:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vault-token-renewer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> TokenRenewer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
