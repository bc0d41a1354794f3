"""A real HTTPS server on loopback for the tests of collateral clients (RIM service, OCSP): TLS
from a throw-away test CA, a handler class of the test's choosing, quiet about the failed
handshakes some tests provoke on purpose."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from weightseal.kms._devcerts import DevPki


@dataclass(frozen=True)
class RunningServer:
    port: int
    ca_file: str  # PEM of the CA that issued the server certificate (for 127.0.0.1)

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def https_server(handler: type[BaseHTTPRequestHandler], directory: Path) -> Iterator[RunningServer]:
    pki = DevPki("test collateral service CA")
    cert, key = pki.write(directory, "server", pki.server(("127.0.0.1",)))
    ca_file = str(pki.write_ca(directory))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield RunningServer(port=int(httpd.server_address[1]), ca_file=ca_file)
    finally:
        httpd.shutdown()
        httpd.server_close()
