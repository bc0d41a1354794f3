"""Wire-level cryptography of the key-release protocol, shared by the key service and clients.

Pure functions over bytes (no gRPC, no Vault): the HPKE suites, the ``info`` strings that bind a
sealed DEK to its request, and the Ed25519 response signature.  The key service seals and signs
with these; the loader's release client (and the admin client) open and verify with them.

HPKE (RFC 9180, base mode, ``cryptography.hazmat.primitives.hpke``)::

    suite "x25519"           KEM DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM
                             public key: 32 bytes (X25519)
    suite "mlkem768-x25519"  KEM ML-KEM-768 + X25519 hybrid, HKDF-SHA256, AES-256-GCM
                             public key: 1184 bytes ML-KEM-768 encapsulation key || 32 bytes X25519

    release info = lp(RELEASE_INFO_DOMAIN) || lp(suite) || lp(model_id) || u32be(version)
                   || lp(nonce) || lp(policy_digest) || lp(recipient public key)
    owner info   = lp(OWNER_INFO_DOMAIN) || lp(suite) || lp(model_id) || u32be(version)
                   || lp(recipient public key)

``lp(x)`` is a 4-byte big-endian length and ``x``.  A DEK sealed for one (model, version, nonce,
policy) fails to open under any other, so a network attacker cannot replay a sealed key into a
different request.

Response signature: Ed25519 over ``RESPONSE_DOMAIN || payload`` where ``payload`` is the exact
serialized ``weightseal.v1.ReleasePayload`` bytes (the signature covers bytes, not a re-encoding).
``service_key_id`` = ``"ed25519:" + sha256(public key)[:8].hex()``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import NoReturn

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from google.protobuf.message import DecodeError
from weightseal.attest._errors import WeightsealError

from . import weightseal_v1_pb2 as pb

__all__ = [
    "SUITE_X25519",
    "SUITE_MLKEM768_X25519",
    "SUITES",
    "DEFAULT_SUITE",
    "DEK_LEN",
    "RELEASE_INFO_DOMAIN",
    "OWNER_INFO_DOMAIN",
    "RESPONSE_DOMAIN",
    "ReleaseVerificationError",
    "HpkePrivateKey",
    "make_hpke_keypair",
    "check_public_key",
    "release_info",
    "owner_info",
    "hpke_seal",
    "hpke_open",
    "service_key_id",
    "sign_payload",
    "verify_payload",
    "open_release",
    "ReleasedPayload",
]

SUITE_X25519 = "x25519"
SUITE_MLKEM768_X25519 = "mlkem768-x25519"
DEFAULT_SUITE = SUITE_X25519
DEK_LEN = 32
MAX_AGE_MS_DEFAULT = 5 * 60 * 1000

RELEASE_INFO_DOMAIN = b"weightseal/v1/release-dek"
OWNER_INFO_DOMAIN = b"weightseal/v1/owner-dek"
RESPONSE_DOMAIN = b"weightseal/v1/release-response\x00"

_X25519_LEN = 32
_MLKEM768_PK_LEN = 1184

_SUITES: dict[str, hpke.Suite] = {
    SUITE_X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    SUITE_MLKEM768_X25519: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}
_ENC_LEN = {SUITE_X25519: hpke.KEM.X25519.enc_length(), SUITE_MLKEM768_X25519: hpke.KEM.MLKEM768_X25519.enc_length()}
SUITES = tuple(_SUITES)


class ReleaseVerificationError(WeightsealError):
    """A release response (or owner DEK delivery) failed verification.

    reasons: ``release.signature`` (not signed by the pinned service key), ``release.binding``
    (payload is for another model/version/nonce/key), ``release.decrypt`` (HPKE open failed),
    ``release.invalid`` (malformed payload), ``release.stale``, ``hpke.suite``, ``hpke.public_key``.
    """

    default_reason = "release.invalid"


def _fail(msg: str, reason: str) -> NoReturn:
    raise ReleaseVerificationError(msg, reason=reason)


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _suite(name: str) -> hpke.Suite:
    s = _SUITES.get(name or DEFAULT_SUITE)
    if s is None:
        _fail("unknown HPKE suite", "hpke.suite")
    return s


class HpkePrivateKey:
    """An ephemeral HPKE private key.  Not picklable; ``repr`` shows only the suite."""

    __slots__ = ("_key", "suite", "public_bytes")

    def __init__(self, key: x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey, suite: str, public_bytes: bytes) -> None:
        self._key = key
        self.suite = suite
        self.public_bytes = public_bytes

    def __repr__(self) -> str:
        return f"HpkePrivateKey(suite={self.suite!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("HpkePrivateKey cannot be pickled")


def make_hpke_keypair(suite: str = DEFAULT_SUITE) -> tuple[HpkePrivateKey, bytes]:
    """A fresh ephemeral key pair: ``(private key, public key bytes)`` in the suite's encoding."""
    suite = suite or DEFAULT_SUITE
    _suite(suite)
    if suite == SUITE_X25519:
        xk = x25519.X25519PrivateKey.generate()
        pub = xk.public_key().public_bytes_raw()
        return HpkePrivateKey(xk, suite, pub), pub
    mk = mlkem.MLKEM768PrivateKey.generate()
    xk = x25519.X25519PrivateKey.generate()
    pub = mk.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
    return HpkePrivateKey(hpke.MLKEM768X25519PrivateKey(mk, xk), suite, pub), pub


def _load_public(suite: str, public: bytes) -> x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey:
    public = bytes(public)
    try:
        if suite == SUITE_X25519:
            if len(public) != _X25519_LEN:
                _fail("X25519 public key must be 32 bytes", "hpke.public_key")
            return x25519.X25519PublicKey.from_public_bytes(public)
        if suite == SUITE_MLKEM768_X25519:
            if len(public) != _MLKEM768_PK_LEN + _X25519_LEN:
                _fail("ML-KEM-768+X25519 public key must be 1216 bytes", "hpke.public_key")
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PK_LEN]),
                x25519.X25519PublicKey.from_public_bytes(public[_MLKEM768_PK_LEN:]),
            )
    except (ValueError, TypeError) as exc:
        raise ReleaseVerificationError("malformed HPKE public key", reason="hpke.public_key") from exc
    _fail("unknown HPKE suite", "hpke.suite")


def check_public_key(suite: str, public: bytes) -> None:
    """Raise ``ReleaseVerificationError`` (``hpke.suite`` / ``hpke.public_key``) if unusable."""
    _suite(suite)
    _load_public(suite or DEFAULT_SUITE, public)


def release_info(*, suite: str, model_id: str, model_version: int, nonce: bytes, policy_digest: str, public_key: bytes) -> bytes:
    return (
        _lp(RELEASE_INFO_DOMAIN)
        + _lp((suite or DEFAULT_SUITE).encode())
        + _lp(model_id.encode("utf-8"))
        + int(model_version).to_bytes(4, "big")
        + _lp(bytes(nonce))
        + _lp(policy_digest.encode())
        + _lp(bytes(public_key))
    )


def owner_info(*, suite: str, model_id: str, model_version: int, public_key: bytes) -> bytes:
    return (
        _lp(OWNER_INFO_DOMAIN)
        + _lp((suite or DEFAULT_SUITE).encode())
        + _lp(model_id.encode("utf-8"))
        + int(model_version).to_bytes(4, "big")
        + _lp(bytes(public_key))
    )


def hpke_seal(suite: str, public_key: bytes, plaintext: bytes | bytearray, info: bytes) -> tuple[bytes, bytes]:
    """HPKE base-mode seal: ``(enc, ciphertext)``."""
    suite = suite or DEFAULT_SUITE
    s = _suite(suite)
    pk = _load_public(suite, public_key)
    out = s.encrypt(bytes(plaintext), pk, info=info)  # enc || ciphertext
    n = _ENC_LEN[suite]
    return out[:n], out[n:]


def hpke_open(private_key: HpkePrivateKey, enc: bytes, ciphertext: bytes, info: bytes) -> bytearray:
    """HPKE base-mode open into a fresh bytearray (the caller wipes it).  ``release.decrypt``."""
    s = _suite(private_key.suite)
    if len(enc) != _ENC_LEN[private_key.suite]:
        _fail("HPKE encapsulated key has the wrong length", "release.decrypt")
    try:
        pt = s.decrypt(bytes(enc) + bytes(ciphertext), private_key._key, info=info)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise ReleaseVerificationError("sealed key does not open", reason="release.decrypt") from exc
    return bytearray(pt)


def service_key_id(public_key: bytes) -> str:
    return "ed25519:" + hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def sign_payload(signing_key: nacl.signing.SigningKey, payload: bytes) -> bytes:
    return bytes(signing_key.sign(RESPONSE_DOMAIN + bytes(payload)).signature)


def verify_payload(service_public_key: bytes, payload: bytes, signature: bytes) -> None:
    """Raise ``ReleaseVerificationError(reason="release.signature")`` unless it verifies."""
    try:
        nacl.signing.VerifyKey(bytes(service_public_key)).verify(RESPONSE_DOMAIN + bytes(payload), bytes(signature))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise ReleaseVerificationError("response is not signed by the pinned key service key", reason="release.signature") from exc


@dataclass(frozen=True)
class ReleasedPayload:
    """The verified fields of a release response (no key material)."""

    model_id: str
    model_version: int
    nonce: bytes
    policy_digest: str
    hpke_suite: str
    audit_hash: str
    issued_at_ms: int
    key_id: str


def open_release(
    payload: bytes,
    signature: bytes,
    service_public_key: bytes,
    private_key: HpkePrivateKey,
    *,
    model_id: str,
    nonce: bytes,
    model_version: int | None = None,
    policy_digest: str | None = None,
    now_ms: int | None = None,
    max_age_ms: int | None = MAX_AGE_MS_DEFAULT,
) -> tuple[ReleasedPayload, bytearray]:
    """Verify a release response and open the DEK.

    1. Ed25519 signature over RESPONSE_DOMAIN || payload with the PINNED service key
       (``release.signature``); nothing in the payload is trusted before this.
    2. Parse the payload (``release.invalid``).
    3. It must be for this model, nonce, suite and recipient public key, and for
       ``model_version`` / ``policy_digest`` when the caller pins them (``release.binding``).
    4. ``issued_at`` not older than ``max_age_ms`` (nor in the future beyond that) when
       ``now_ms`` is given (``release.stale``).
    5. HPKE open with ``info`` rebuilt from the verified fields (``release.decrypt``); the DEK
       must be 32 bytes.
    Returns the fields and the DEK in a bytearray the caller must wipe.
    """
    verify_payload(service_public_key, payload, signature)
    msg = pb.ReleasePayload()
    try:
        msg.ParseFromString(bytes(payload))
    except (DecodeError, ValueError) as exc:
        raise ReleaseVerificationError("malformed release payload", reason="release.invalid") from exc
    suite = msg.hpke_suite or DEFAULT_SUITE
    if msg.model_id != model_id or not hmac.compare_digest(msg.nonce, bytes(nonce)):
        _fail("release payload is for another model or request", "release.binding")
    if suite != private_key.suite or not hmac.compare_digest(msg.hpke_public_key, private_key.public_bytes):
        _fail("release payload is sealed to another key", "release.binding")
    if model_version not in (None, 0) and msg.model_version != model_version:
        _fail("release payload is for another model version", "release.binding")
    if policy_digest is not None and msg.policy_digest != policy_digest:
        _fail("release payload names another policy", "release.binding")
    if now_ms is not None and max_age_ms is not None and abs(now_ms - msg.issued_at_ms) > max_age_ms:
        _fail("release payload is stale", "release.stale")
    info = release_info(
        suite=suite,
        model_id=msg.model_id,
        model_version=msg.model_version,
        nonce=msg.nonce,
        policy_digest=msg.policy_digest,
        public_key=msg.hpke_public_key,
    )
    dek = hpke_open(private_key, msg.enc, msg.ciphertext, info)
    if len(dek) != DEK_LEN:
        dek[:] = bytes(len(dek))
        _fail("released key has the wrong length", "release.invalid")
    fields = ReleasedPayload(
        model_id=msg.model_id,
        model_version=msg.model_version,
        nonce=bytes(msg.nonce),
        policy_digest=msg.policy_digest,
        hpke_suite=suite,
        audit_hash=msg.audit_hash,
        issued_at_ms=msg.issued_at_ms,
        key_id=msg.key_id,
    )
    return fields, dek
