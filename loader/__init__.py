"""weightseal.loader: the sealed-checkpoint format (seal and open) and device placement.

Public API (shaped like safetensors)::

    from weightseal.loader import DataKey, LocalKey, seal_checkpoint, load_sealed, open_sealed

    key = LocalKey.load("owner.key")                      # offline/test KEK
    seal_checkpoint("ckpt/", "ckpt.sealed/", model_id="acme/llm", key=key)
    tensors = load_sealed("ckpt.sealed/", key, device="cpu")

See FORMAT.md for the byte layout.
"""

from ._errors import (
    IntegrityError,
    KeyFileError,
    LoaderError,
    SealedFormatError,
    TensorNotFoundError,
)
from ._format import FORMAT_VERSION
from ._keys import DataKey, LocalKey, generate_local_key_file
from ._manifest import FileEntry, Manifest, ShardEntry, read_manifest
from ._open import (
    SealedCheckpoint,
    SealedSlice,
    inspect_sealed,
    load_sealed,
    open_sealed,
    unseal_checkpoint,
    verify_sealed,
)
from ._release_client import (
    KeyReleaseDenied,
    KeyReleaseError,
    KeyServiceUnavailable,
    KmsTarget,
    LoadReport,
    ReleaseInfo,
    ReleaseResponseError,
    RetryPolicy,
    load_model,
    release_key,
)
from ._seal import SealReport, seal_checkpoint

__all__ = [
    "KeyReleaseDenied",
    "KeyReleaseError",
    "KeyServiceUnavailable",
    "KmsTarget",
    "LoadReport",
    "ReleaseInfo",
    "ReleaseResponseError",
    "RetryPolicy",
    "from_sealed_pretrained",
    "load_model",
    "release_key",
    "FORMAT_VERSION",
    "DataKey",
    "LocalKey",
    "generate_local_key_file",
    "seal_checkpoint",
    "SealReport",
    "load_sealed",
    "open_sealed",
    "SealedCheckpoint",
    "SealedSlice",
    "inspect_sealed",
    "verify_sealed",
    "unseal_checkpoint",
    "read_manifest",
    "Manifest",
    "ShardEntry",
    "FileEntry",
    "LoaderError",
    "IntegrityError",
    "SealedFormatError",
    "KeyFileError",
    "TensorNotFoundError",
]


def __getattr__(name: str) -> object:
    # transformers is heavy and optional: import the integration only when it is asked for
    if name in ("from_sealed_pretrained", "HfIntegrationError"):
        from . import _hf

        return getattr(_hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
