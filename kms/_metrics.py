"""Prometheus metrics for the key service, on their own registry and HTTP port."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu_rim import RimStore
from weightseal.attest._snp_crl import SnpCrlDir
from weightseal.attest._tdx_collateral import TdxCollateralDir

__all__ = ["KmsMetrics"]


class _CollateralCollector:
    """Read at scrape time, from the same directories the verifiers read: when each TDX
    collateral set and each NVIDIA RIM stops being accepted, so renewals can be alerted on
    before releases start failing (e.g. ``weightseal_tdx_collateral_next_update_seconds -
    time() < 7 * 86400``).  A set whose document is missing or unreadable reports 0."""

    def __init__(self, tdx: TdxCollateralDir | None, rims: RimStore | None, snp_crl: SnpCrlDir | None = None) -> None:
        self.tdx = tdx
        self.rims = rims
        self.snp_crl = snp_crl

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily("weightseal_attestation_collateral_readable",
                                     "1 if the configured collateral directory could be read", labels=["source"])
        if self.tdx is not None:
            yield _dates("weightseal_tdx_collateral_next_update_seconds",
                         "nextUpdate of each TDX collateral document (Unix time; 0 = missing/unreadable)",
                         ["fmspc", "document"], self.tdx.next_updates, readable, "tdx")
        if self.rims is not None:
            yield _dates("weightseal_gpu_rim_not_after_seconds",
                         "End of validity of each NVIDIA RIM's signing chain (Unix time)",
                         ["file", "version"], self.rims.not_after, readable, "gpu_rims")
        if self.snp_crl is not None:
            yield _dates("weightseal_snp_crl_next_update_seconds",
                         "nextUpdate of each AMD ARK CRL file (Unix time; 0 = unreadable, not AMD's, "
                         "or revoking the pinned ASK/ASVK)", ["product", "key"], self.snp_crl.next_updates,
                         readable, "snp_crl", errors=(AttestationError, OSError))
        yield readable


def _dates(name: str, doc: str, labels: list[str], read: Callable[[], Mapping[tuple[str, str], datetime | None]],
           readable: GaugeMetricFamily, source: str,
           errors: tuple[type[Exception], ...] = (AttestationError,)) -> GaugeMetricFamily:
    """One gauge of dates (Unix time, 0 for None) read from a collateral store; whether the
    store could be read goes into ``readable{source}``."""
    g = GaugeMetricFamily(name, doc, labels=labels)
    try:
        for key, t in sorted(read().items()):
            g.add_metric(list(key), t.timestamp() if t is not None else 0.0)
        readable.add_metric([source], 1.0)
    except errors:
        readable.add_metric([source], 0.0)
    return g


class KmsMetrics:
    """``weightseal_releases_total{decision,reason}``, ``weightseal_release_seconds``,
    ``weightseal_vault_errors_total``, ``weightseal_challenges_total``,
    ``weightseal_admin_calls_total{method,reason}``; with collateral directories configured,
    ``weightseal_tdx_collateral_next_update_seconds{fmspc,document}``,
    ``weightseal_gpu_rim_not_after_seconds{file,version}``,
    ``weightseal_snp_crl_next_update_seconds{product,key}`` and
    ``weightseal_attestation_collateral_readable{source}``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.releases = Counter("weightseal_releases_total", "Key release decisions", ["decision", "reason"],
                                registry=self.registry)
        self.latency = Histogram("weightseal_release_seconds", "Key release latency (server side)",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                                 registry=self.registry)
        self.vault_errors = Counter("weightseal_vault_errors_total", "Vault unavailable/errors seen by the key service",
                                    registry=self.registry)
        self.challenges = Counter("weightseal_challenges_total", "Nonces issued", registry=self.registry)
        self.admin_calls = Counter("weightseal_admin_calls_total", "Admin API calls", ["method", "reason"],
                                   registry=self.registry)
        self._http: Any = None
        self.port: int | None = None

    def watch_collateral(self, tdx: Any, rims: Any, snp_crl: Any = None) -> None:
        """Export the expiry of the collateral in these stores (others, e.g. a PCS fetcher,
        explicit RIMs or CRLs fetched from KDS, are ignored)."""
        tdx_dir = tdx if isinstance(tdx, TdxCollateralDir) else None
        rim_store = rims if isinstance(rims, RimStore) else None
        crl_dir = snp_crl if isinstance(snp_crl, SnpCrlDir) else None
        if tdx_dir is not None or rim_store is not None or crl_dir is not None:
            self.registry.register(_CollateralCollector(tdx_dir, rim_store, crl_dir))

    def observe_release(self, decision: str, reason: str, seconds: float) -> None:
        self.releases.labels(decision=decision, reason=reason).inc()
        self.latency.observe(seconds)

    def vault_error(self) -> None:
        self.vault_errors.inc()

    def serve(self, host: str, port: int) -> int:
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        self.port = int(server.server_address[1])
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
