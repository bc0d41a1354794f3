from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChallengeRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class ChallengeResponse(_message.Message):
    __slots__ = ("nonce", "expires_at_ms")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    expires_at_ms: int
    def __init__(self, nonce: _Optional[bytes] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("platform", "report", "certs")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CERTS_FIELD_NUMBER: _ClassVar[int]
    platform: str
    report: bytes
    certs: bytes
    def __init__(self, platform: _Optional[str] = ..., report: _Optional[bytes] = ..., certs: _Optional[bytes] = ...) -> None: ...

class ReleaseKeyRequest(_message.Message):
    __slots__ = ("model_id", "model_version", "nonce", "hpke_suite", "hpke_public_key", "evidence")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    HPKE_SUITE_FIELD_NUMBER: _ClassVar[int]
    HPKE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: int
    nonce: bytes
    hpke_suite: str
    hpke_public_key: bytes
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[int] = ..., nonce: _Optional[bytes] = ..., hpke_suite: _Optional[str] = ..., hpke_public_key: _Optional[bytes] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ...) -> None: ...

class ReleasePayload(_message.Message):
    __slots__ = ("model_id", "model_version", "nonce", "policy_digest", "hpke_suite", "enc", "ciphertext", "audit_hash", "issued_at_ms", "key_id", "hpke_public_key")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HPKE_SUITE_FIELD_NUMBER: _ClassVar[int]
    ENC_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_HASH_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    HPKE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: int
    nonce: bytes
    policy_digest: str
    hpke_suite: str
    enc: bytes
    ciphertext: bytes
    audit_hash: str
    issued_at_ms: int
    key_id: str
    hpke_public_key: bytes
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[int] = ..., nonce: _Optional[bytes] = ..., policy_digest: _Optional[str] = ..., hpke_suite: _Optional[str] = ..., enc: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ..., audit_hash: _Optional[str] = ..., issued_at_ms: _Optional[int] = ..., key_id: _Optional[str] = ..., hpke_public_key: _Optional[bytes] = ...) -> None: ...

class ReleaseKeyResponse(_message.Message):
    __slots__ = ("payload", "signature", "service_key_id")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    service_key_id: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., service_key_id: _Optional[str] = ...) -> None: ...

class VersionSummary(_message.Message):
    __slots__ = ("version", "created_at_ms", "retired", "key_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    created_at_ms: int
    retired: bool
    key_id: str
    def __init__(self, version: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., retired: _Optional[bool] = ..., key_id: _Optional[str] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("model_id", "owner", "policy_digest", "policy_version", "policy_json", "versions", "latest_version", "revoked", "created_at_ms", "updated_at_ms")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    owner: str
    policy_digest: str
    policy_version: int
    policy_json: str
    versions: _containers.RepeatedCompositeFieldContainer[VersionSummary]
    latest_version: int
    revoked: bool
    created_at_ms: int
    updated_at_ms: int
    def __init__(self, model_id: _Optional[str] = ..., owner: _Optional[str] = ..., policy_digest: _Optional[str] = ..., policy_version: _Optional[int] = ..., policy_json: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[VersionSummary, _Mapping]]] = ..., latest_version: _Optional[int] = ..., revoked: _Optional[bool] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("model_id", "policy_json")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    policy_json: str
    def __init__(self, model_id: _Optional[str] = ..., policy_json: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("model_id", "policy_json", "expected_policy_version")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    policy_json: str
    expected_policy_version: int
    def __init__(self, model_id: _Optional[str] = ..., policy_json: _Optional[str] = ..., expected_policy_version: _Optional[int] = ...) -> None: ...

class CreateVersionRequest(_message.Message):
    __slots__ = ("model_id", "hpke_suite", "owner_hpke_public_key")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    HPKE_SUITE_FIELD_NUMBER: _ClassVar[int]
    OWNER_HPKE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    hpke_suite: str
    owner_hpke_public_key: bytes
    def __init__(self, model_id: _Optional[str] = ..., hpke_suite: _Optional[str] = ..., owner_hpke_public_key: _Optional[bytes] = ...) -> None: ...

class CreateVersionResponse(_message.Message):
    __slots__ = ("version", "enc", "ciphertext", "key_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENC_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    enc: bytes
    ciphertext: bytes
    key_id: str
    def __init__(self, version: _Optional[int] = ..., enc: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("model_id", "rewrap")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REWRAP_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    rewrap: bool
    def __init__(self, model_id: _Optional[str] = ..., rewrap: _Optional[bool] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("key_version", "rewrapped")
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWRAPPED_FIELD_NUMBER: _ClassVar[int]
    key_version: int
    rewrapped: int
    def __init__(self, key_version: _Optional[int] = ..., rewrapped: _Optional[int] = ...) -> None: ...

class RetireVersionRequest(_message.Message):
    __slots__ = ("model_id", "version")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RevokeModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class TailRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("model_id", "decision", "reason", "event", "since_ms", "until_ms", "limit")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    decision: str
    reason: str
    event: str
    since_ms: int
    until_ms: int
    limit: int
    def __init__(self, model_id: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., event: _Optional[str] = ..., since_ms: _Optional[int] = ..., until_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditRecords(_message.Message):
    __slots__ = ("records_json",)
    RECORDS_JSON_FIELD_NUMBER: _ClassVar[int]
    records_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records_json: _Optional[_Iterable[str]] = ...) -> None: ...
