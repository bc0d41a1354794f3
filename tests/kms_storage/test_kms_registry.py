"""Model registry in KV v2 (real OpenBao, service policy)."""

from __future__ import annotations

import json

import pytest
from weightseal.kms._errors import KmsError, ModelNotFoundError
from weightseal.kms._registry import ModelRecord, Registry, VersionRecord

pytestmark = pytest.mark.integration

WRAPPED = "vault:v1:" + "A" * 40 + "=="


def _record(model_id: str = "m1", owner: str = "owner-a") -> ModelRecord:
    return ModelRecord(
        model_id=model_id, owner=owner, policy_json='{"version":1}',
        policy_digest="sha256:" + "ab" * 32, policy_version=1,
        versions={1: VersionRecord(wrapped_dek=WRAPPED, created_at="2026-05-01T00:00:00.000Z")},
        latest_version=1)


def test_create_get_round_trip(vault_env):
    reg = Registry(vault_env.backend)
    rec = reg.create(_record())
    assert rec.kv_version == 1
    got = reg.get("m1")
    assert got == rec
    assert got.versions[1].wrapped_dek == WRAPPED and got.versions[1].retired is False
    assert got.policy_json == '{"version":1}'


def test_create_existing_fails(vault_env):
    reg = Registry(vault_env.client, kv_mount=vault_env.kv_mount)
    reg.create(_record())
    with pytest.raises(KmsError) as ei:
        reg.create(_record(owner="someone-else"))
    assert ei.value.reason == "model.exists"
    assert reg.get("m1").owner == "owner-a"


def test_get_missing(vault_env):
    with pytest.raises(ModelNotFoundError) as ei:
        Registry(vault_env.backend).get("nope")
    assert ei.value.reason == "model.not_found"


def test_list_by_owner(vault_env):
    reg = Registry(vault_env.backend)
    assert reg.list() == []
    for mid, owner in (("a1", "alice"), ("b1", "bob"), ("a2", "alice")):
        reg.create(_record(mid, owner))
    assert [r.model_id for r in reg.list("alice")] == ["a1", "a2"]
    assert [r.model_id for r in reg.list("bob")] == ["b1"]
    assert [r.model_id for r in reg.list()] == ["a1", "a2", "b1"]
    assert reg.list("carol") == []


def test_update_with_cas_detects_conflict(vault_env):
    reg = Registry(vault_env.backend)
    reg.create(_record())
    replica1 = reg.get("m1")
    replica2 = reg.get("m1")
    assert replica1.kv_version == replica2.kv_version == 1
    replica1.versions[2] = VersionRecord(wrapped_dek=WRAPPED.replace("v1", "v2"),
                                         created_at="2026-05-02T00:00:00.000Z")
    replica1.latest_version = 2
    reg.update(replica1, expected_version=1)
    assert replica1.kv_version == 2
    replica2.revoked = True
    with pytest.raises(KmsError) as ei:
        reg.update(replica2, expected_version=1)
    assert ei.value.reason == "registry.conflict"
    now = reg.get("m1")
    assert now.latest_version == 2 and now.revoked is False and now.kv_version == 2
    # re-read and retry succeeds
    now.revoked = True
    reg.update(now)
    assert reg.get("m1").revoked is True


def test_update_requires_version(vault_env):
    reg = Registry(vault_env.backend)
    with pytest.raises(KmsError) as ei:
        reg.update(_record(), expected_version=0)
    assert ei.value.reason == "registry.conflict"


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(owner=5),
    lambda d: d.update(extra="x"),
    lambda d: d.pop("revoked"),
    lambda d: d.update(format="weightseal.model.v9"),
    lambda d: d.update(model_id="other"),
    lambda d: d.update(latest_version=7),
    lambda d: d["versions"]["1"].update(wrapped_dek="not-wrapped"),
    lambda d: d["versions"].update({"0": d["versions"]["1"]}),
    lambda d: d.update(revoked="yes"),
    lambda d: d.update(created_at="yesterday"),
])
def test_corrupted_entry_rejected(vault_env, mutate):
    reg = Registry(vault_env.backend)
    reg.create(_record())
    d = _record().to_json()
    mutate(d)
    vault_env.root.secrets.kv.v2.create_or_update_secret(
        "models/m1", secret={"record": json.dumps(d)}, mount_point=vault_env.kv_mount)
    with pytest.raises(KmsError) as ei:
        reg.get("m1")
    assert ei.value.reason == "registry.corrupt"


@pytest.mark.parametrize("secret", [{"record": "{not json"}, {"record": "[]"}, {"other": "x"},
                                    {"record": 5}, {"record": "{}", "more": "x"}])
def test_non_record_entry_rejected(vault_env, secret):
    vault_env.root.secrets.kv.v2.create_or_update_secret(
        "models/m1", secret=secret, mount_point=vault_env.kv_mount)
    with pytest.raises(KmsError) as ei:
        Registry(vault_env.backend).get("m1")
    assert ei.value.reason == "registry.corrupt"


def test_invalid_model_id_never_reaches_vault(vault_env):
    with pytest.raises(KmsError) as ei:
        Registry(vault_env.backend).get("../../sys")
    assert ei.value.reason == "model.invalid_id"
