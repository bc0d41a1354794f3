"""Caching of fetched collateral (AMD KDS certificates and CRLs, NVIDIA RIMs).

Everything cached here is public and is verified on every use, so the cache needs no integrity
protection of its own: a tampered entry can only cause a denial.  Writes are atomic (temporary
file, fsync, rename) so a crash never leaves a half-written entry, and best effort: a cache
that cannot be written is not an error.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ._errors import AttestationError
from ._files import read_limited

__all__ = ["write_cache_file", "RefreshingCache"]


def write_cache_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``; errors are swallowed (best effort)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cache-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass


class RefreshingCache:
    """Documents that change now and then (a CRL, a re-signed RIM): each is held in memory and,
    with ``directory``, on disk; a copy younger than ``refresh_seconds`` is returned as is, an
    older one is fetched again, and if that fetch fails (raises ``AttestationError``) the last
    copy is returned instead, for the verifier's own freshness checks to judge.  The age of a
    disk copy is its modification time, so a restart does not refetch everything."""

    def __init__(
        self,
        *,
        directory: Path | None,
        refresh_seconds: float,
        clock: Callable[[], float],
        limit: int,
    ) -> None:
        if not refresh_seconds > 0:
            raise ValueError("refresh_seconds must be positive")
        self.directory = directory
        self._refresh = float(refresh_seconds)
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._held: dict[str, tuple[float, bytes]] = {}

    def get(self, file_name: str, fetch: Callable[[], bytes]) -> bytes:
        now = self._clock()
        with self._lock:
            held = self._held.get(file_name)
        if held is None:
            held = self._from_disk(file_name)
        if held is not None and 0 <= now - held[0] < self._refresh:
            return held[1]
        try:
            data = fetch()
        except AttestationError:
            if held is not None:
                return held[1]
            raise
        with self._lock:
            self._held[file_name] = (now, data)
        if self.directory is not None:
            write_cache_file(self.directory / file_name, data)
        return data

    def _from_disk(self, file_name: str) -> tuple[float, bytes] | None:
        if self.directory is None:
            return None
        path = self.directory / file_name
        try:
            fetched = path.stat().st_mtime
            data = read_limited(path, self._limit, what="cached document", error=AttestationError)
        except (OSError, AttestationError):
            return None
        return (fetched, data) if data else None
