"""VaultBackend against a real OpenBao, under the deploy/vault policies (AppRole client)."""

from __future__ import annotations

import time

import hvac
import pytest
from weightseal.kms._devvault import DevVault, setup_vault
from weightseal.kms._errors import KmsError, VaultError, VaultUnavailableError
from weightseal.kms._vault import (
    TokenRenewer,
    VaultBackend,
    login_approle,
    validate_model_id,
    vault_errors,
)

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b"


def test_datakey_unwrap_round_trip(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    dek, wrapped = b.generate_dek(MODEL)
    assert isinstance(dek, bytearray) and len(dek) == 32
    assert wrapped.startswith("vault:v1:")
    assert b.wrapped_version(wrapped) == 1
    assert b.unwrap_dek(MODEL, wrapped) == dek
    dek2, wrapped2 = b.generate_dek(MODEL)
    assert dek2 != dek and wrapped2 != wrapped


def test_key_settings(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    b.ensure_model_key(MODEL)  # idempotent
    info = b.key_info(MODEL)
    assert info["type"] == "aes256-gcm96"
    assert info["derived"] is True
    assert info["exportable"] is False
    assert info["allow_plaintext_backup"] is False
    assert (info["latest_version"], info["min_decryption_version"]) == (1, 1)


def test_context_binding(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    dek, wrapped = b.generate_dek(MODEL)
    other = "other-model"
    # Through the backend: the other model's key (if any) never unwraps it either.
    b.ensure_model_key(other)
    with pytest.raises(VaultError) as ei2:
        b.unwrap_dek(other, wrapped)
    assert ei2.value.reason == "vault.unwrap_failed"
    assert dek.hex() not in str(ei2.value)


def test_context_binding_same_key_other_context(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    _, wrapped = b.generate_dek(MODEL)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault_env.client.secrets.transit.decrypt_data(
            MODEL, ciphertext=wrapped, context="b3RoZXItbW9kZWw=",  # b64("other-model")
            mount_point=vault_env.transit_mount)


def test_rotate_rewrap_and_min_version(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    dek1, w1 = b.generate_dek(MODEL)
    assert b.rotate_key(MODEL) == 2
    dek2, w2 = b.generate_dek(MODEL)
    assert w2.startswith("vault:v2:")
    assert b.unwrap_dek(MODEL, w1) == dek1  # old wrapped still unwraps
    r1 = b.rewrap_dek(MODEL, w1)
    assert r1.startswith("vault:v2:") and r1 != w1
    assert b.unwrap_dek(MODEL, r1) == dek1
    b.set_min_decryption_version(MODEL, 2)
    assert b.key_info(MODEL)["min_decryption_version"] == 2
    with pytest.raises(VaultError) as ei:
        b.unwrap_dek(MODEL, w1)
    assert ei.value.reason == "vault.unwrap_failed"
    assert b.unwrap_dek(MODEL, w2) == dek2


def test_wrap_local_dek(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    dek = bytes(range(32))
    w = b.wrap_dek(MODEL, dek)
    assert w.startswith("vault:v1:")
    assert bytes(b.unwrap_dek(MODEL, w)) == dek


def test_export_refused_even_for_root(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    # The service policy denies export ...
    with pytest.raises(VaultError) as ei:
        with vault_errors("export"):
            vault_env.client.secrets.transit.export_key(MODEL, "encryption-key",
                                                       mount_point=vault_env.transit_mount)
    assert ei.value.reason == "vault.forbidden"
    # ... and the key itself is not exportable, so even root cannot.
    with pytest.raises(VaultError) as ei2:
        with vault_errors("export"):
            vault_env.root.secrets.transit.export_key(MODEL, "encryption-key",
                                                     mount_point=vault_env.transit_mount)
    assert ei2.value.reason == "vault.error"
    assert "exportable" in str(ei2.value)


@pytest.mark.parametrize("action", [
    "read_sys_mounts", "delete_key", "make_exportable", "allow_deletion", "backup_key",
    "create_non_derived", "create_exportable", "trim", "delete_registry", "read_other_mount",
])
def test_policy_denies(vault_env, action):
    c, tm, km = vault_env.client, vault_env.transit_mount, vault_env.kv_mount
    vault_env.backend.ensure_model_key(MODEL)
    calls = {
        "read_sys_mounts": lambda: c.sys.list_mounted_secrets_engines(),
        "delete_key": lambda: c.secrets.transit.delete_key(MODEL, mount_point=tm),
        "make_exportable": lambda: c.secrets.transit.update_key_configuration(
            MODEL, exportable=True, mount_point=tm),
        "allow_deletion": lambda: c.secrets.transit.update_key_configuration(
            MODEL, deletion_allowed=True, mount_point=tm),
        "backup_key": lambda: c.secrets.transit.backup_key(MODEL, mount_point=tm),
        "create_non_derived": lambda: c.secrets.transit.create_key(
            "plain", key_type="aes256-gcm96", derived=False, mount_point=tm),
        "create_exportable": lambda: c.secrets.transit.create_key(
            "exp", key_type="aes256-gcm96", derived=True, exportable=True, mount_point=tm),
        "trim": lambda: c.secrets.transit.trim_key(MODEL, min_version=1, mount_point=tm),
        "delete_registry": lambda: c.secrets.kv.v2.delete_metadata_and_all_versions(
            f"models/{MODEL}", mount_point=km),
        "read_other_mount": lambda: c.secrets.kv.v2.read_secret_version(
            "anything", mount_point="secret", raise_on_deleted_version=True),
    }
    with pytest.raises(VaultError) as ei:
        with vault_errors(action):
            calls[action]()
    assert ei.value.reason == "vault.forbidden"
    # the key is untouched
    info = vault_env.root.secrets.transit.read_key(MODEL, mount_point=tm)["data"]
    assert info["exportable"] is False and info["deletion_allowed"] is False


def test_admin_policy_can_rotate_but_not_decrypt(vault_env):
    b = vault_env.backend
    b.ensure_model_key(MODEL)
    _, wrapped = b.generate_dek(MODEL)
    admin = VaultBackend(vault_env.admin_client(), transit_mount=vault_env.transit_mount,
                         kv_mount=vault_env.kv_mount)
    assert admin.rotate_key(MODEL) == 2
    assert admin.rewrap_dek(MODEL, wrapped).startswith("vault:v2:")
    for op in (lambda: admin.unwrap_dek(MODEL, wrapped), lambda: admin.generate_dek(MODEL)):
        with pytest.raises(VaultError) as ei:
            op()
        assert ei.value.reason == "vault.forbidden"


@pytest.mark.parametrize("bad", ["", "A", "-x", "x-", "a/b", "a b", "../x", "x" * 129, "é", None, 5])
def test_invalid_model_ids(vault_env, bad):
    with pytest.raises(KmsError) as ei:
        vault_env.backend.ensure_model_key(bad)
    assert ei.value.reason == "model.invalid_id"


def test_valid_model_ids():
    for ok in ("a", "0", "a.b", "a..b", "llama_3", "x" * 128, "m-1.2_3"):
        assert validate_model_id(ok) == ok


@pytest.mark.parametrize("bad", ["", "vault:v0:AAAAAAAAAAAAAAAAAAAA", "vault:v1:", "v1:AAAAAAAAAAAAAAAAAAAAAAAA",
                                 "vault:v1:AAAA AAAAAAAAAAAAAAAAAAAA", "vault:vx:AAAAAAAAAAAAAAAAAAAAAAA="])
def test_bad_wrapped_rejected_before_vault(bad):
    b = VaultBackend(hvac.Client(url="http://127.0.0.1:9", timeout=0.1))
    with pytest.raises(VaultError) as ei:
        b.unwrap_dek(MODEL, bad)
    assert ei.value.reason == "vault.bad_wrapped"


def test_pause_gives_unavailable_quickly_then_recovers(vault_env):
    b = VaultBackend(login_approle(vault_env.address, vault_env.creds.role_id,
                                   vault_env.creds.secret_id, timeout=1.0),
                     transit_mount=vault_env.transit_mount, kv_mount=vault_env.kv_mount)
    b.ensure_model_key(MODEL)
    dek, wrapped = b.generate_dek(MODEL)
    vault_env.dev.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(VaultUnavailableError) as ei:
            b.unwrap_dek(MODEL, wrapped)
        elapsed = time.monotonic() - t0
        assert ei.value.reason == "vault.unavailable"
        assert elapsed < 3.0
    finally:
        vault_env.dev.resume()
    assert b.unwrap_dek(MODEL, wrapped) == dek


def test_stopped_server_unavailable_then_back():
    with DevVault(client_timeout=1.0) as dv:
        creds = setup_vault(dv.client())
        b = VaultBackend(login_approle(dv.address, creds.role_id, creds.secret_id, timeout=1.0))
        b.ensure_model_key(MODEL)
        b.check_health()
        dv.stop()
        t0 = time.monotonic()
        for op in (lambda: b.generate_dek(MODEL), b.check_health,
                   lambda: login_approle(dv.address, creds.role_id, creds.secret_id, timeout=1.0)):
            with pytest.raises(VaultUnavailableError) as ei:
                op()
            assert ei.value.reason == "vault.unavailable"
        assert time.monotonic() - t0 < 3.0
        # Back on the same address; a dev server starts empty, so set up again.
        dv.start()
        creds2 = setup_vault(dv.client())
        b2 = VaultBackend(login_approle(dv.address, creds2.role_id, creds2.secret_id, timeout=1.0))
        b2.ensure_model_key(MODEL)
        dek, wrapped = b2.generate_dek(MODEL)
        assert wrapped.startswith("vault:v1:") and b2.unwrap_dek(MODEL, wrapped) == dek
    assert not dv.running


def test_bad_approle_credentials(vault_env):
    with pytest.raises(VaultError) as ei:
        login_approle(vault_env.address, vault_env.creds.role_id, "0" * 36, timeout=2.0)
    assert ei.value.reason == "vault.unauthenticated"
    assert "0" * 36 not in str(ei.value)


def test_token_renewer_relogins_after_max_ttl(vault_env):
    root = vault_env.root
    role = f"renew{vault_env.name_suffix}"
    root.auth.approle.create_or_update_approle(role, token_policies=[vault_env.creds.policy],
                                               token_ttl="2s", token_max_ttl="3s")  # noqa: S106
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    client = login_approle(vault_env.address, role_id, secret_id, timeout=2.0)
    first_token = client.token
    b = VaultBackend(client, transit_mount=vault_env.transit_mount, kv_mount=vault_env.kv_mount)
    b.ensure_model_key(MODEL)
    with TokenRenewer(client, role_id=role_id, secret_id=secret_id, min_interval=0.3,
                      retry_interval=0.3) as r:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and r.relogins == 0:
            time.sleep(0.2)
        assert r.renewals >= 1
        assert r.relogins >= 1
        assert client.token != first_token
        assert b.key_info(MODEL)["latest_version"] == 1  # still authorised
    assert "secret" not in repr(r).lower() or secret_id not in repr(r)
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(r)


def test_vault_audit_device_logs_without_key_material():
    import base64
    import json as _json

    with DevVault(vault_audit=True) as dv:
        creds = setup_vault(dv.client())
        b = VaultBackend(login_approle(dv.address, creds.role_id, creds.secret_id, timeout=2.0))
        b.ensure_model_key(MODEL)
        dek, wrapped = b.generate_dek(MODEL)
        assert b.unwrap_dek(MODEL, wrapped) == dek
        assert dv.vault_audit_path is not None
        with open(dv.vault_audit_path, encoding="utf-8") as f:
            entries = [_json.loads(line) for line in f if line.strip()]
        text = open(dv.vault_audit_path, encoding="utf-8").read()
    paths = [e["request"]["path"] for e in entries if e.get("type") == "response"]
    assert f"weightseal-transit/datakey/plaintext/{MODEL}" in paths
    assert f"weightseal-transit/decrypt/{MODEL}" in paths
    assert base64.b64encode(bytes(dek)).decode() not in text  # response values are HMAC'd
    assert bytes(dek).hex() not in text
