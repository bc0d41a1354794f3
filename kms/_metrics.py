"""Prometheus metrics for the key service, on their own registry and HTTP port."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["KmsMetrics"]


class KmsMetrics:
    """``weightseal_releases_total{decision,reason}``, ``weightseal_release_seconds``,
    ``weightseal_vault_errors_total``, ``weightseal_challenges_total``,
    ``weightseal_admin_calls_total{method,reason}``."""

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
