"""weightseal.proto: the wire protocol (``weightseal_v1.proto`` and its generated code) and the
pure release cryptography shared by the key service and its clients (``_release_crypto``)."""

from ._release_crypto import (
    DEFAULT_SUITE,
    SUITES,
    HpkePrivateKey,
    ReleasedPayload,
    ReleaseVerificationError,
    make_hpke_keypair,
    open_release,
    service_key_id,
    verify_payload,
)

__all__ = [
    "DEFAULT_SUITE",
    "SUITES",
    "HpkePrivateKey",
    "ReleaseVerificationError",
    "ReleasedPayload",
    "make_hpke_keypair",
    "open_release",
    "service_key_id",
    "verify_payload",
]
