"""Key-service errors.  Each has a stable ``reason`` that travels to the caller and the audit log."""

from __future__ import annotations

from weightseal.attest._errors import WeightsealError

__all__ = [
    "KmsError",
    "NonceError",
    "VaultError",
    "VaultUnavailableError",
    "AuditError",
    "AuthError",
    "PermissionDeniedError",
    "ModelNotFoundError",
    "ModelRevokedError",
    "ConfigError",
    "ReleaseError",
]


class KmsError(WeightsealError):
    default_reason = "kms.error"
    #: the gRPC status name when the error came back from a remote key service (client side)
    code: str | None = None


class NonceError(KmsError):
    """reason: nonce.invalid | nonce.expired | nonce.replayed | nonce.model"""

    default_reason = "nonce.invalid"


class VaultError(KmsError):
    """Vault answered but refused or failed (reason vault.error / vault.forbidden)."""

    default_reason = "vault.error"


class VaultUnavailableError(VaultError):
    """Vault is down, sealed or unreachable: callers get UNAVAILABLE and no key."""

    default_reason = "vault.unavailable"


class AuditError(KmsError):
    """The audit log could not be written: fail closed, no key leaves (reason audit.unwritable)."""

    default_reason = "audit.unwritable"


class AuthError(KmsError):
    """Caller not authenticated (reason auth.unauthenticated)."""

    default_reason = "auth.unauthenticated"


class PermissionDeniedError(KmsError):
    """Authenticated caller may not do this (reason auth.forbidden), e.g. another owner's model."""

    default_reason = "auth.forbidden"


class ModelNotFoundError(KmsError):
    default_reason = "model.not_found"


class ModelRevokedError(KmsError):
    default_reason = "model.revoked"


class ConfigError(KmsError):
    default_reason = "config.invalid"


class ReleaseError(KmsError):
    """Client-side: a release response failed verification (bad signature, wrong binding)."""

    default_reason = "release.invalid"
