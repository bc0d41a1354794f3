#!/usr/bin/env python3
"""gRPC health probe for the weightseal key service (installed in the image as
``weightseal-grpc-health``).

Asks ``grpc.health.v1.Health/Check`` on the release port over TLS and exits 0 only if the
answer is SERVING.  Kubernetes' built-in ``grpc`` probe cannot speak TLS and the release port is
TLS-only, so Docker, compose and Kubernetes run this as an exec probe.

    weightseal-grpc-health --address 127.0.0.1:8443 --ca /etc/weightseal/tls/ca.crt \\
        --server-name weightseal-kms [--service weightseal.v1.KeyRelease] [--timeout 3]

``--server-name`` is the name checked against the server certificate (the probe connects to
127.0.0.1, which the certificate need not name).  Exit codes: 0 SERVING, 1 any other status
(NOT_SERVING during graceful shutdown, SERVICE_UNKNOWN), 2 no answer (connection refused, TLS
failure, timeout).
"""

from __future__ import annotations

import argparse
import sys


def check(address: str, *, ca: str | None, server_name: str | None, service: str, timeout: float,
          insecure: bool = False) -> tuple[int, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options: list[tuple[str, str]] = []
    if insecure:
        channel = grpc.insecure_channel(address)
    else:
        root = None
        if ca:
            with open(ca, "rb") as f:
                root = f.read()
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root), options=options)
    try:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        if code == grpc.StatusCode.NOT_FOUND:
            return 1, f"SERVICE_UNKNOWN ({service!r})"
        return 2, f"no answer: {name}"
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    return (0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1), status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="weightseal-grpc-health", description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default="127.0.0.1:8443", help="host:port of the release port")
    ap.add_argument("--ca", help="CA certificate (PEM) that issued the server certificate")
    ap.add_argument("--server-name", help="name to check in the server certificate")
    ap.add_argument("--service", default="", help='service name to check ("" = the whole server)')
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--insecure", action="store_true", help="plaintext (development servers only)")
    args = ap.parse_args(argv)
    try:
        rc, msg = check(args.address, ca=args.ca, server_name=args.server_name, service=args.service,
                        timeout=args.timeout, insecure=args.insecure)
    except OSError as exc:
        rc, msg = 2, f"cannot read CA file: {exc.strerror}"
    print(msg, file=sys.stdout if rc == 0 else sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
