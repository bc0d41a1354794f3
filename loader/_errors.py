"""The loader's branch of the error hierarchy.

Everything that goes wrong while *reading* sealed weights is one opaque ``IntegrityError`` with
reason ``integrity``: its message never says which check failed, and it never carries bytes.  A
distinct error per check would be an oracle (truncated? wrong key? bad tag?) for whoever feeds the
loader crafted files.  Owner-side problems (sealing a malformed source directory) and unreadable
key files have their own types, since they reveal nothing about protected data.
"""

from __future__ import annotations

from weightseal.attest._errors import WeightsealError

__all__ = ["LoaderError", "IntegrityError", "SealedFormatError", "KeyFileError", "TensorNotFoundError"]


class LoaderError(WeightsealError):
    """Root of the loader's errors."""

    default_reason = "loader.error"


class IntegrityError(LoaderError):
    """A sealed checkpoint failed authentication or is malformed.  Always reason ``integrity``."""

    default_reason = "integrity"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        # The message and reason are fixed on purpose: callers get no detail about the check.
        del message, reason
        super().__init__("sealed checkpoint failed integrity verification", reason="integrity")


class SealedFormatError(LoaderError):
    """Owner side: the source checkpoint cannot be sealed (not safetensors, bad header, ...),
    or an argument to the sealer is invalid.  Reasons ``loader.source.*`` / ``loader.args``."""

    default_reason = "loader.source.invalid"


class KeyFileError(LoaderError):
    """A local key file is missing, unreadable, too permissive or malformed.
    Reasons ``loader.keyfile.*``."""

    default_reason = "loader.keyfile.invalid"


class TensorNotFoundError(LoaderError, KeyError):
    """The caller asked for a tensor name the (authenticated) checkpoint does not contain."""

    default_reason = "loader.tensor.not_found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return LoaderError.__str__(self)
