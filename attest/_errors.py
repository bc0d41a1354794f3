"""The project's exception hierarchy (root and attestation/policy branches).

Every error carries a stable, machine-readable ``reason`` code (``attest.snp.signature``,
``policy.measurement``, ``nonce.expired`` ...).  Callers, the audit log and the wire protocol use
the reason; the message is for humans and never contains key material or plaintext.

``WeightsealError`` lives here because ``weightseal.attest`` is the lowest layer: the loader and
the key service import downward and derive their own branches from it.
"""

from __future__ import annotations

__all__ = [
    "WeightsealError",
    "AttestationError",
    "EvidenceParseError",
    "CertificateChainError",
    "SignatureError",
    "BindingError",
    "TcbError",
    "ClaimsError",
    "CollateralError",
    "CollectorError",
    "UnsupportedEvidenceError",
    "MockNotAllowedError",
    "PolicyError",
    "PolicyFormatError",
    "PolicyDenied",
]


class WeightsealError(Exception):
    """Root of every error this project raises on purpose."""

    default_reason = "weightseal.error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        self.reason: str = reason or self.default_reason
        super().__init__(message or self.reason)

    def __str__(self) -> str:
        msg = super().__str__()
        return msg if msg.startswith(self.reason) else f"{self.reason}: {msg}"


class AttestationError(WeightsealError):
    """Evidence was rejected. ``reason`` is ``attest.<platform>.<check>``."""

    default_reason = "attest.invalid"


class EvidenceParseError(AttestationError):
    """Malformed evidence bytes (bad length, version, field out of range)."""

    default_reason = "attest.parse"


class CertificateChainError(AttestationError):
    """A certificate chain does not lead to the pinned vendor root (or a cert is malformed,
    expired, revoked or has the wrong role)."""

    default_reason = "attest.chain"


class SignatureError(AttestationError):
    """The evidence signature does not verify under the endorsed key."""

    default_reason = "attest.signature"


class BindingError(AttestationError):
    """report_data / GPU nonce does not bind the request (nonce, model id, HPKE key)."""

    default_reason = "attest.binding"


class TcbError(AttestationError):
    """TCB values disagree (e.g. SNP VCEK extensions vs reported_tcb) or are out of date."""

    default_reason = "attest.tcb"


class ClaimsError(AttestationError):
    """A verified claim fails a verifier-level rule (e.g. unexpected product, bad field)."""

    default_reason = "attest.claims"


class CollateralError(AttestationError):
    """Collateral (TCB info, QE identity, CRL, RIM, KDS certs) is missing, malformed or bad."""

    default_reason = "attest.collateral"


class CollectorError(AttestationError):
    """Evidence could not be collected inside this machine (no TEE device, ioctl failed)."""

    default_reason = "attest.collect"


class UnsupportedEvidenceError(AttestationError):
    default_reason = "attest.unsupported"


class MockNotAllowedError(AttestationError):
    """Mock evidence offered where the mock platform was not explicitly enabled."""

    default_reason = "attest.mock.not_allowed"


class PolicyError(WeightsealError):
    default_reason = "policy.error"


class PolicyFormatError(PolicyError):
    """A policy document is malformed, has an unknown version or an unknown field."""

    default_reason = "policy.invalid"


class PolicyDenied(PolicyError):
    """Deny decision. ``reason`` is ``policy.<rule>``; ``rule`` names the exact rule/profile."""

    default_reason = "policy.denied"

    def __init__(self, message: str = "", *, reason: str | None = None, rule: str = "") -> None:
        super().__init__(message, reason=reason)
        self.rule = rule
