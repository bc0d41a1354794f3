"""Admin API: mutual TLS identities, owner isolation, audit access, CLI."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from kmstest_support import ADMIN, ALICE, Kms, mock_policy, reason_of, registered
from weightseal.kms._admin_client import AdminClient
from weightseal.kms._errors import AuthError, KmsError, PermissionDeniedError
from weightseal.proto import weightseal_v1_pb2 as pb
from weightseal.proto import weightseal_v1_pb2_grpc as pbg

import weightseal_cli

pytestmark = pytest.mark.integration


def test_owner_isolation(kms: Kms) -> None:
    registered(kms, "alice-model")
    bob = kms.admin("bob")
    for call in (lambda: bob.get("alice-model"),
                 lambda: bob.set_policy("alice-model", mock_policy(versions=[1, 2])),
                 lambda: bob.create_version("alice-model"),
                 lambda: bob.rotate("alice-model"),
                 lambda: bob.retire("alice-model", 1),
                 lambda: bob.revoke("alice-model")):
        with pytest.raises(PermissionDeniedError) as ei:
            call()
        assert ei.value.reason == "auth.forbidden"
    assert bob.list() == []
    alice = kms.admin("alice")
    got = alice.get("alice-model")
    assert got.owner == ALICE and got.policy_version == 1 and got.latest_version == 1 and not got.revoked
    assert [m.model_id for m in alice.list()] == ["alice-model"]
    # refused changes are audited with the caller
    denied = [r for r in kms.audit_records() if r["kind"] == "admin" and r["decision"] == "deny"]
    assert {r["op"] for r in denied} == {"set_policy", "create_version", "rotate", "retire", "revoke"}
    assert all(r["reason"] == "auth.forbidden" and r["caller"].endswith("/bob") for r in denied)
    # admins read everything and may revoke, but may not change an owner's policy
    admin = kms.admin("admin")
    assert [m.model_id for m in admin.list()] == ["alice-model"]
    with pytest.raises(PermissionDeniedError):
        admin.set_policy("alice-model", mock_policy())
    assert admin.revoke("alice-model").revoked


def test_policy_versioning_and_validation(kms: Kms) -> None:
    registered(kms)
    a = kms.admin("alice")
    s = a.set_policy("m1", mock_policy(versions=[1, 2]), expected_policy_version=1)
    assert s.policy_version == 2 and json.loads(s.policy_json)["model_versions"] == [1, 2]
    with pytest.raises(KmsError) as ei:
        a.set_policy("m1", mock_policy(), expected_policy_version=1)
    assert ei.value.reason == "registry.conflict" and ei.value.code == "ABORTED"  # type: ignore[attr-defined]
    with pytest.raises(KmsError) as ei:
        a.set_policy("m1", '{"version": 1, "model_versions": [1], "profiles": [], "extra": 1}')
    assert ei.value.reason == "policy.invalid" and ei.value.code == "INVALID_ARGUMENT"  # type: ignore[attr-defined]
    with pytest.raises(KmsError) as ei:
        a.register("m1", mock_policy())
    assert ei.value.reason == "model.exists"
    with pytest.raises(KmsError) as ei:
        a.retire("m1", 9)
    assert ei.value.reason == "model.version_not_found"


def test_unauthenticated_admin_calls(kms: Kms, pki: Any) -> None:
    # On the release port (no client certificate requested) the interceptor answers UNAUTHENTICATED.
    stub = pbg.ModelAdminStub(kms._channel)
    with pytest.raises(grpc.RpcError) as ei:
        stub.ListModels(pb.ListModelsRequest(), timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason_of(ei.value) == "auth.unauthenticated"
    with pytest.raises(AuthError) as ei2:
        AdminClient(kms.server.address, ca=pki.ca, timeout=10).list()
    assert ei2.value.reason == "auth.unauthenticated"
    # On the admin port the TLS handshake itself requires a client certificate.
    with pytest.raises(KmsError) as ei3:
        AdminClient(kms.server.admin_address, ca=pki.ca, timeout=10).list()
    assert ei3.value.reason == "kms.unavailable"
    # A client certificate from another CA (same SAN as alice) is refused in the handshake.
    cert, key = pki.other_client
    with pytest.raises(KmsError) as ei4:
        AdminClient(kms.server.admin_address, ca=pki.ca, cert=cert, key=key, timeout=10).list()
    assert ei4.value.reason == "kms.unavailable"
    # A client that trusts the wrong CA refuses the server.
    cert, key = pki.clients["alice"]
    with pytest.raises(KmsError) as ei5:
        AdminClient(kms.server.admin_address, ca=pki.other_ca, cert=cert, key=key, timeout=10).list()
    assert ei5.value.reason == "kms.unavailable"
    ch = grpc.secure_channel(kms.server.address, grpc.ssl_channel_credentials(pki.other_ca.read_bytes()))
    with pytest.raises(grpc.RpcError) as ei6:
        pbg.KeyReleaseStub(ch).Challenge(pb.ChallengeRequest(model_id="m1"), timeout=10)
    assert ei6.value.code() == grpc.StatusCode.UNAVAILABLE
    ch.close()


def test_audit_service_admin_only(kms: Kms, tee: Any) -> None:
    registered(kms)
    kms.release("m1", tee)
    with pytest.raises(PermissionDeniedError):
        kms.admin("alice").audit_tail()
    admin = kms.admin("admin")
    tail = [json.loads(x) for x in admin.audit_tail(3)]
    assert len(tail) == 3 and tail[-1]["kind"] == "grant"
    grants = [json.loads(x) for x in admin.audit_query(model_id="m1", decision="grant")]
    assert len(grants) == 1 and grants[0]["reason"] == "ok"
    assert [json.loads(x)["kind"] for x in admin.audit_query(event="challenge")] == ["challenge"]
    assert admin.audit_query(reason="policy.debug") == []


def test_health_and_reflection(kms: Kms) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    h = health_pb2_grpc.HealthStub(kms._channel)
    assert h.Check(health_pb2.HealthCheckRequest(service="weightseal.v1.KeyRelease"), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    r = reflection_pb2_grpc.ServerReflectionStub(kms._channel)
    out = list(r.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in out[0].list_services_response.service}
    assert {"weightseal.v1.KeyRelease", "grpc.health.v1.Health"} <= names


def test_cli_model_commands(kms: Kms, pki: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = pki.clients["alice"]
    pol = tmp_path / "policy.json"
    pol.write_text(mock_policy())
    common = ["--kms", kms.server.admin_address, "--ca", str(pki.ca), "--cert", str(cert), "--key", str(key), "--json"]
    assert weightseal_cli.main(["model", "register", "cli-model", "--policy", str(pol), *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_id"] == "cli-model" and out["owner"] == ALICE and out["policy_version"] == 1
    kms.admin("alice").create_version("cli-model")
    assert weightseal_cli.main(["model", "rotate", "cli-model", *common]) == 0
    assert json.loads(capsys.readouterr().out) == {"key_version": 2, "rewrapped": 1}
    pol.write_text(mock_policy(versions=[1, 2]))
    assert weightseal_cli.main(["model", "policy", "set", "cli-model", str(pol), *common]) == 0
    assert json.loads(capsys.readouterr().out)["policy_version"] == 2
    assert weightseal_cli.main(["model", "retire", "cli-model", "1", *common]) == 0
    assert json.loads(capsys.readouterr().out)["versions"][0]["retired"] is True
    assert weightseal_cli.main(["model", "list", *common]) == 0
    assert [m["model_id"] for m in json.loads(capsys.readouterr().out)] == ["cli-model"]
    assert weightseal_cli.main(["model", "revoke", "cli-model", *common]) == 0
    assert json.loads(capsys.readouterr().out)["revoked"] is True
    bob_cert, bob_key = pki.clients["bob"]
    rc = weightseal_cli.main(["model", "get", "cli-model", "--kms", kms.server.admin_address, "--ca", str(pki.ca),
                              "--cert", str(bob_cert), "--key", str(bob_key)])
    assert rc == 1 and "auth.forbidden" in capsys.readouterr().err
    assert ADMIN  # admin identity configured in the fixture
