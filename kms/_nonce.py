"""Self-authenticating, expiring, single-use release nonces (DESIGN.md "Key release protocol" 1).

Layout (32 bytes)::

    off size field
    0    8   random (os.urandom)
    8    6   expiry, unix milliseconds, u48 big-endian
    14   6   model tag = SHA-256(lp(MODEL_DOMAIN) || lp(model id))[:6]
    20  12   MAC = HMAC-SHA256(secret, lp(MAC_DOMAIN) || bytes[0:20])[:12]

Any replica holding the shared secret checks the MAC and the expiry without shared state; the
replica that sees a nonce first remembers it until it expires (in-memory spent set, pruned on
expiry), so a nonce is single-use per replica.  The MAC does not cover the model id itself, only
its tag, so a nonce issued for another model is recognised as such (``nonce.model``) rather than
as a forgery; the evidence binds the full model id anyway (report_data).

Checks, in order: length / MAC (``nonce.invalid``: also a nonce from another service secret),
model tag (``nonce.model``), expiry (``nonce.expired``; an expiry further ahead than the TTL
allows is ``nonce.invalid``), first use on this replica (``nonce.replayed``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from ._errors import NonceError

__all__ = ["NONCE_LEN", "NonceService"]

NONCE_LEN = 32
SECRET_LEN = 32
MAC_DOMAIN = b"weightseal/v1/nonce-mac"
MODEL_DOMAIN = b"weightseal/v1/nonce-model"
_MAX_SPENT = 1_000_000
_SKEW_MS = 5_000


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _model_tag(model_id: str) -> bytes:
    return hashlib.sha256(_lp(MODEL_DOMAIN) + _lp(model_id.encode("utf-8"))).digest()[:6]


class NonceService:
    """Issues and checks nonces.  ``clock`` returns unix seconds (float), injectable for tests."""

    def __init__(self, secret: bytes, *, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < SECRET_LEN:
            raise NonceError("nonce secret must be at least 32 bytes", reason="config.invalid")
        if not 0 < ttl_seconds <= 3600:
            raise NonceError("nonce TTL must be in (0, 3600] seconds", reason="config.invalid")
        self._secret = bytes(secret)
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._spent: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._next_prune = 0

    def __repr__(self) -> str:
        return f"NonceService(ttl_ms={self._ttl_ms})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("NonceService holds a secret and cannot be pickled")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _lp(MAC_DOMAIN) + body, hashlib.sha256).digest()[:12]

    def issue(self, model_id: str) -> tuple[bytes, int]:
        """A fresh nonce for ``model_id`` and its expiry (unix ms)."""
        expires = self._now_ms() + self._ttl_ms
        body = os.urandom(8) + expires.to_bytes(6, "big") + _model_tag(model_id)
        return body + self._mac(body), expires

    def check(self, nonce: bytes, model_id: str, *, consume: bool = True) -> int:
        """Validate (and by default spend) ``nonce`` for ``model_id``; returns its expiry (ms)."""
        if not isinstance(nonce, bytes | bytearray) or len(nonce) != NONCE_LEN:
            raise NonceError("nonce must be 32 bytes", reason="nonce.invalid")
        nonce = bytes(nonce)
        body, mac = nonce[:20], nonce[20:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise NonceError("nonce was not issued by this key service", reason="nonce.invalid")
        if not hmac.compare_digest(body[14:20], _model_tag(model_id)):
            raise NonceError("nonce was issued for another model", reason="nonce.model")
        expires = int.from_bytes(body[8:14], "big")
        now = self._now_ms()
        if expires <= now:
            raise NonceError("nonce has expired", reason="nonce.expired")
        if expires > now + self._ttl_ms + _SKEW_MS:
            raise NonceError("nonce expiry is implausible", reason="nonce.invalid")
        if consume:
            with self._lock:
                self._prune(now)
                if nonce in self._spent:
                    raise NonceError("nonce was already used", reason="nonce.replayed")
                if len(self._spent) >= _MAX_SPENT:
                    raise NonceError("too many outstanding nonces", reason="nonce.capacity")
                self._spent[nonce] = expires
        return expires

    def _prune(self, now: int) -> None:
        if now < self._next_prune and len(self._spent) < _MAX_SPENT:
            return
        self._next_prune = now + 1000
        for k in [k for k, exp in self._spent.items() if exp <= now]:
            del self._spent[k]

    @property
    def spent_count(self) -> int:
        return len(self._spent)
