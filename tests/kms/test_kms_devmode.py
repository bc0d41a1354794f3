"""`weightseal kms serve --dev` as a real process: banner, working release, SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from weightseal.attest._binding import report_data
from weightseal.attest._mock import UnsafeMockPlatform
from weightseal.kms._admin_client import AdminClient
from weightseal.kms._audit import verify_log

pytestmark = pytest.mark.integration


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_dev_end_to_end(tmp_path: Path) -> None:
    import grpc
    from weightseal.proto import _release_crypto as rc
    from weightseal.proto import weightseal_v1_pb2 as pb
    from weightseal.proto import weightseal_v1_pb2_grpc as pbg

    rel, adm = _free_port(), _free_port()
    d = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIGHTSEAL_KMS_", "WEIGHTSEAL_ADMIN_"))}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "weightseal_cli", "kms", "serve", "--dev", "--dev-dir", str(d),
         "--listen", f"127.0.0.1:{rel}", "--admin-listen", f"127.0.0.1:{adm}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        lines: list[str] = []
        deadline = time.time() + 60
        assert proc.stdout is not None
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        banner = "".join(lines)
        assert "DEVELOPMENT MODE -- NOT FOR PRODUCTION" in banner
        m = re.search(r"service public key \(pin this\): ([0-9a-f]{64})", banner)
        assert m is not None
        pub = bytes.fromhex(m.group(1))
        assert f"release (TEEs):  127.0.0.1:{rel}" in banner
        # the owner credential it printed works
        owner = AdminClient(f"127.0.0.1:{adm}", ca=d / "ca.pem", cert=d / "owner.pem", key=d / "owner.key")
        policy = json.loads((d / "mock-policy.json").read_text())
        policy["profiles"][0]["measurements"] = ["ab" * 48]
        owner.register("demo", json.dumps(policy))
        version, dek = owner.create_version("demo")
        assert version == 1
        owner.close()
        ch = grpc.secure_channel(f"127.0.0.1:{rel}", grpc.ssl_channel_credentials((d / "ca.pem").read_bytes()))
        stub = pbg.KeyReleaseStub(ch)
        nonce = stub.Challenge(pb.ChallengeRequest(model_id="demo"), timeout=10).nonce
        priv, hpub = rc.make_hpke_keypair()
        ev = UnsafeMockPlatform.generate().report(report_data(nonce, "demo", hpub), measurement=b"\xab" * 48)
        resp = stub.ReleaseKey(pb.ReleaseKeyRequest(model_id="demo", nonce=nonce, hpke_public_key=hpub,
                                                    evidence=[pb.Evidence(platform="mock", report=ev.report)]), timeout=10)
        _, got = rc.open_release(resp.payload, resp.signature, pub, priv, model_id="demo", nonce=nonce)
        assert bytes(got) == bytes(dek)
        ch.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        recs = [json.loads(x) for x in (d / "audit.jsonl").read_text().splitlines()]
        assert recs[-1]["kind"] == "checkpoint"
        assert [r["kind"] for r in recs if r["kind"] in ("grant", "deny")] == ["grant"]
        assert verify_log(d / "audit.jsonl", pub).ok
        for name in ("service-signing.key", "nonce-secret.key", "owner.key"):
            assert (d / name).stat().st_mode & 0o077 == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
