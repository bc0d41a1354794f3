"""AMD Key Distribution Service (KDS) client for VCEK certificates and product cert chains.

Used only when a caller configures one (``verify_snp(..., kds=KdsClient(...))``): the verifier
never touches the network by default.  Everything fetched is a public certificate that is
verified against the pinned AMD roots on every use, so the on-disk cache needs no integrity
protection of its own (a tampered cache entry can only cause a denial).

URLs (AMD "VCEK Certificate and KDS Interface Specification"):

* VCEK, Milan/Genoa: ``/vcek/v1/{product}/{hwid: 64 bytes hex}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=``
* VCEK, Turin: ``/vcek/v1/Turin/{hwid: first 8 bytes of CHIP_ID hex}?fmcSPL=&blSPL=&teeSPL=&snpSPL=&ucodeSPL=``
* ASK+ARK: ``/vcek/v1/{product}/cert_chain``; ASVK+ARK: ``/vlek/v1/{product}/cert_chain``
* ARK CRL: ``/vcek/v1/{product}/crl``, ``/vlek/v1/{product}/crl``

A VLEK cannot be fetched (KDS hands it to the cloud provider only).

Certificates never change, so they are cached for good.  A CRL does: ``snp_crl`` keeps the
last one fetched (in memory and in ``cache_dir``) for ``crl_refresh_seconds`` (default one
hour), then asks KDS again; if KDS cannot be reached the last copy is used, and the verifier's
freshness check (``nextUpdate``) decides whether it is still good enough.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from ._cache import RefreshingCache, write_cache_file
from ._claims import SnpTcb
from ._errors import CollateralError
from ._http import guarded_fetch, https_get

__all__ = ["KdsClient", "Fetcher", "KDS_BASE_URL", "urllib_fetcher"]

KDS_BASE_URL = "https://kdsintf.amd.com"
MAX_RESPONSE = 64 * 1024
Fetcher = Callable[[str], bytes]


def _kds_err(msg: str) -> CollateralError:
    return CollateralError(msg, reason="attest.snp.kds")


def urllib_fetcher(url: str, timeout: float = 15.0) -> bytes:
    """Default fetcher: HTTPS GET with a timeout and a response size cap."""
    return https_get(url, limit=MAX_RESPONSE, timeout=timeout, error=_kds_err)[0]


class KdsClient:
    """Fetch VCEKs and cert chains from AMD KDS through an injectable fetcher, with an optional
    on-disk cache (``cache_dir``).  ``fetcher(url) -> bytes`` may raise anything; errors come
    out as ``CollateralError(reason="attest.snp.kds")``."""

    def __init__(
        self,
        fetcher: Fetcher | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        base_url: str = KDS_BASE_URL,
        crl_refresh_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher: Fetcher = fetcher if fetcher is not None else urllib_fetcher
        self._cache = Path(cache_dir) if cache_dir is not None else None
        self._base = base_url.rstrip("/")
        self._crls = RefreshingCache(directory=self._cache, refresh_seconds=crl_refresh_seconds, clock=clock,
                                     limit=MAX_RESPONSE)

    def __repr__(self) -> str:
        return f"KdsClient(base_url={self._base!r}, cache_dir={str(self._cache) if self._cache else None!r})"

    # -- URLs -------------------------------------------------------------------------------

    def vcek_url(self, product: str, chip_id: bytes, tcb: SnpTcb) -> str:
        if product not in ("Milan", "Genoa", "Turin"):
            raise _kds_err(f"unknown product {product!r}")
        if len(chip_id) != 64 or not any(chip_id):
            raise _kds_err("CHIP_ID must be 64 bytes and not masked")
        if product == "Turin":
            if tcb.fmc is None:
                raise _kds_err("Turin TCB needs an FMC value")
            hwid = chip_id[:8].hex()
            query = f"fmcSPL={tcb.fmc}&blSPL={tcb.bootloader}&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}"
        else:
            hwid = chip_id.hex()
            query = f"blSPL={tcb.bootloader}&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}"
        return f"{self._base}/vcek/v1/{product}/{hwid}?{query}"

    def cert_chain_url(self, product: str, *, vlek: bool = False) -> str:
        if product not in ("Milan", "Genoa", "Turin"):
            raise _kds_err(f"unknown product {product!r}")
        return f"{self._base}/{'vlek' if vlek else 'vcek'}/v1/{product}/cert_chain"

    def crl_url(self, product: str, *, vlek: bool = False) -> str:
        if product not in ("Milan", "Genoa", "Turin"):
            raise _kds_err(f"unknown product {product!r}")
        return f"{self._base}/{'vlek' if vlek else 'vcek'}/v1/{product}/crl"

    # -- fetching ---------------------------------------------------------------------------

    def fetch_vcek(self, product: str, chip_id: bytes, tcb: SnpTcb) -> bytes:
        """DER VCEK for this chip and reported TCB (not yet verified)."""
        return self.get(self.vcek_url(product, chip_id, tcb))

    def fetch_cert_chain(self, product: str, *, vlek: bool = False) -> bytes:
        """PEM ASK (or ASVK) + ARK; only ever compared against the pinned copies."""
        return self.get(self.cert_chain_url(product, vlek=vlek))

    def snp_crl(self, product: str, key_type: str) -> bytes:
        """The ARK CRL for ``product`` and ``key_type`` ("vcek"/"vlek"), not yet verified
        (``SnpCrlSource`` for ``verify_snp(crl=...)``).  Refreshed after
        ``crl_refresh_seconds``; the last copy is returned when KDS cannot be reached."""
        if key_type not in ("vcek", "vlek"):
            raise _kds_err(f"unknown key type {key_type!r}")
        url = self.crl_url(product, vlek=key_type == "vlek")
        return self._crls.get(hashlib.sha256(url.encode()).hexdigest() + ".crl", lambda: self._fetch(url))

    def _fetch(self, url: str) -> bytes:
        return guarded_fetch(lambda: self._fetcher(url), limit=MAX_RESPONSE, error=_kds_err, what="KDS fetch")

    def get(self, url: str) -> bytes:
        path = self._cache_path(url)
        if path is not None and path.is_file():
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            if 0 < len(data) <= MAX_RESPONSE:
                return data
        data = self._fetch(url)
        if path is not None:
            write_cache_file(path, data)
        return data

    def _cache_path(self, url: str) -> Path | None:
        if self._cache is None:
            return None
        return self._cache / (hashlib.sha256(url.encode()).hexdigest() + ".cert")
