"""deploy/grpc_health_check.py (the image's weightseal-grpc-health) against a real key service:
SERVING over TLS with the probe's --server-name, failures when the name, CA or port are wrong,
NOT_SERVING-or-gone after shutdown."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from deploytest_support import DEPLOY
from weightseal.kms._config import AuditConfig, KeysConfig, TlsConfig, VaultConfig, load_config
from weightseal.kms._devcerts import DevPki
from weightseal.kms._server import serve

pytestmark = pytest.mark.integration
SCRIPT = DEPLOY / "grpc_health_check.py"


def _probe_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ws_grpc_health_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def server(vault_env: Any, tmp_path: Path) -> Any:
    pki = DevPki("probe CA")
    ca = pki.write_ca(tmp_path)
    sc, sk = pki.write(tmp_path, "server", pki.server(hosts=("weightseal-kms",)))  # the probe's --server-name
    cfg = load_config(
        None, env={}, dev=True, listen="127.0.0.1:0", admin_listen="127.0.0.1:0",
        tls=TlsConfig(cert=str(sc), key=str(sk), client_ca=str(ca)),
        keys=KeysConfig(signing_key=str(tmp_path / "k" / "s.key"), nonce_secret=str(tmp_path / "k" / "n.key")),
        audit=AuditConfig(path=str(tmp_path / "audit.jsonl"), replica="probe-0"),
        vault=VaultConfig(transit_mount=vault_env.transit_mount, kv_mount=vault_env.kv_mount),
        shutdown_grace_seconds=0.5)
    srv = serve(cfg, vault_client=vault_env.client)
    srv.test_ca = ca
    try:
        yield srv
    finally:
        srv.stop(0.2)


def test_probe_serving_and_failures(server: Any, tmp_path: Path) -> None:
    probe = _probe_module()
    ca = str(server.test_ca)
    addr = f"127.0.0.1:{server.port}"
    assert probe.check(addr, ca=ca, server_name="weightseal-kms", service="", timeout=5) == (0, "SERVING")
    assert probe.check(addr, ca=ca, server_name="weightseal-kms", service="weightseal.v1.KeyRelease",
                       timeout=5) == (0, "SERVING")
    rc, msg = probe.check(addr, ca=ca, server_name="weightseal-kms", service="no.Such", timeout=5)
    assert rc == 1 and msg.startswith("SERVICE_UNKNOWN")
    # the certificate does not name 127.0.0.1: without --server-name the TLS handshake fails
    rc, msg = probe.check(addr, ca=ca, server_name=None, service="", timeout=3)
    assert rc == 2 and msg.startswith("no answer")
    # a CA that did not issue the server certificate
    other = DevPki("other CA").write_ca(tmp_path / "other")
    assert probe.check(addr, ca=str(other), server_name="weightseal-kms", service="", timeout=3)[0] == 2
    # the command line, as the exec probe runs it
    out = subprocess.run([sys.executable, str(SCRIPT), "--address", addr, "--ca", ca, "--server-name", "weightseal-kms"],  # noqa: S603
                         capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "SERVING")
    # after shutdown: no answer
    server.stop(0.2)
    rc, _ = probe.check(addr, ca=ca, server_name="weightseal-kms", service="", timeout=2)
    assert rc == 2
    out = subprocess.run([sys.executable, str(SCRIPT), "--address", addr, "--ca", ca, "--server-name", "weightseal-kms",  # noqa: S603
                          "--timeout", "2"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2 and "no answer" in out.stderr


def test_probe_missing_ca_file_is_exit_2(tmp_path: Path) -> None:
    probe = _probe_module()
    assert probe.main(["--address", "127.0.0.1:1", "--ca", str(tmp_path / "nope.pem")]) == 2
