"""Reading operator-supplied files (collateral, RIMs, evidence) with a size bound."""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["read_limited"]


def read_limited(path: str | os.PathLike[str], limit: int, *, what: str,
                 error: Callable[[str], Exception]) -> bytes:
    """The whole file, reading at most ``limit + 1`` bytes; an unreadable file or one over
    ``limit`` raises ``error(message)`` (the caller's own typed error)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {os.fspath(path)} ({exc.strerror})") from None
    if len(data) > limit:
        raise error(f"{what} {os.fspath(path)} is too large")
    return data
