"""weightseal.kms: the attested key-release service (gRPC), its Vault backend, model registry,
policy store and audit log, plus the admin client.  Never touches weights."""

from ._admin_client import AdminClient, RemoteError
from ._audit import AuditLog, AuditRecord, Problem, VerifyResult, iter_records, verify_log
from ._config import KmsConfig, load_config
from ._devvault import AppRoleCreds, DevVault, setup_vault
from ._errors import (
    AuditError,
    AuthError,
    ConfigError,
    KmsError,
    ModelNotFoundError,
    ModelRevokedError,
    NonceError,
    PermissionDeniedError,
    ReleaseError,
    VaultError,
    VaultUnavailableError,
)
from ._nonce import NonceService
from ._registry import ModelRecord, Registry, VersionRecord
from ._release import CallerInfo, KeyReleaser
from ._server import Server, serve
from ._vault import TokenRenewer, VaultBackend, login_approle, validate_model_id

__all__ = [
    "AppRoleCreds",
    "AuditLog",
    "AuditRecord",
    "DevVault",
    "ModelRecord",
    "Problem",
    "Registry",
    "TokenRenewer",
    "VaultBackend",
    "VerifyResult",
    "VersionRecord",
    "iter_records",
    "login_approle",
    "setup_vault",
    "validate_model_id",
    "verify_log",
    "AdminClient",
    "AuditError",
    "AuthError",
    "CallerInfo",
    "ConfigError",
    "KeyReleaser",
    "KmsConfig",
    "KmsError",
    "ModelNotFoundError",
    "ModelRevokedError",
    "NonceError",
    "NonceService",
    "PermissionDeniedError",
    "ReleaseError",
    "RemoteError",
    "Server",
    "VaultError",
    "VaultUnavailableError",
    "load_config",
    "serve",
]
