"""The Vault policies the deploy docs and manifests refer to are the deploy/vault/*.hcl files that
setup_vault (the integration tests, ``kms serve --dev``) and setup.sh install, under the same names
(deploy/vault/*.hcl are links to the package's kms/vault_policies/*.hcl)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from deploytest_support import COMPOSE, DEPLOY, K8S, PROD_CONFIG
from weightseal.kms import _devvault as dv

VAULT_DIR = DEPLOY / "vault"


class _Recorder:
    """Just enough of hvac.Client for setup_vault, recording what it writes."""

    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.engines: list[tuple[str, str]] = []
        self.roles: dict[str, dict[str, Any]] = {}
        self.sys = SimpleNamespace(
            list_mounted_secrets_engines=lambda: {"data": {}},
            enable_secrets_engine=lambda kind, path, **kw: self.engines.append((kind, path)),
            create_or_update_policy=lambda name, text: self.policies.__setitem__(name, text),
            list_auth_methods=lambda: {"data": {}},
            enable_auth_method=lambda kind, path: None,
        )
        approle = SimpleNamespace(
            create_or_update_approle=lambda role, **kw: self.roles.__setitem__(role, kw),
            read_role_id=lambda role, mount_point: {"data": {"role_id": "rid"}},
            generate_secret_id=lambda role, mount_point: {"data": {"secret_id": "sid"}},
        )
        self.auth = SimpleNamespace(approle=approle)


def _docs_text() -> str:
    parts = [p.read_text(encoding="utf-8") for p in [DEPLOY / "OPERATIONS.md", COMPOSE, *sorted(K8S.glob("*.yaml"))]]
    return "\n".join(parts)


def test_setup_vault_writes_exactly_the_deploy_vault_policies() -> None:
    rec = _Recorder()
    creds = dv.setup_vault(rec)  # the default: the package's policies
    files = {p.stem for p in VAULT_DIR.glob("*.hcl")}
    assert set(rec.policies) == files == {dv.SERVICE_POLICY, dv.ADMIN_POLICY}
    for name, text in rec.policies.items():
        assert text == (VAULT_DIR / f"{name}.hcl").read_text(encoding="utf-8")  # default mounts: unchanged
    assert rec.roles[dv.SERVICE_ROLE]["token_policies"] == [dv.SERVICE_POLICY]
    assert (creds.role_id, creds.policy, creds.role_name) == ("rid", dv.SERVICE_POLICY, dv.SERVICE_ROLE)
    assert ("transit", "weightseal-transit") in rec.engines and ("kv", "weightseal-kv") in rec.engines


def test_setup_sh_installs_the_same_files_and_role() -> None:
    sh = (VAULT_DIR / "setup.sh").read_text(encoding="utf-8")
    assert '"$HERE"/*.hcl' in sh  # every policy file next to it
    assert f'SERVICE_POLICY="{dv.SERVICE_POLICY}"' in sh and f'ROLE="{dv.SERVICE_ROLE}' in sh


def test_deploy_docs_reference_existing_policy_files_and_names() -> None:
    text = _docs_text()
    referenced = set(re.findall(r"deploy/vault/([A-Za-z0-9_.-]+)", text))
    assert referenced, "the deploy docs name no deploy/vault files"
    for name in referenced:
        assert (VAULT_DIR / name).is_file(), f"deploy docs refer to missing deploy/vault/{name}"
    for policy in (dv.SERVICE_POLICY, dv.ADMIN_POLICY):
        assert f"deploy/vault/{policy}.hcl" in text, policy
    assert "deploy/vault/setup.sh" in text
    # and the names the docs use for policies are real ones
    ops = (DEPLOY / "OPERATIONS.md").read_text(encoding="utf-8")
    vault_section = ops[ops.index("## 1. Vault"):ops.index("## 2.")]
    named = set(re.findall(r"`(weightseal-(?:kms|admin)[a-z-]*)`", vault_section))
    assert named and named <= {dv.SERVICE_POLICY, dv.ADMIN_POLICY, dv.SERVICE_ROLE}, named


def test_config_mounts_are_the_ones_the_policies_grant() -> None:
    cfg = yaml.safe_load(PROD_CONFIG.read_text(encoding="utf-8"))["vault"]
    cm = yaml.safe_load(yaml.safe_load((K8S / "configmap.yaml").read_text(encoding="utf-8"))["data"]["kms.yaml"])["vault"]
    policy = (VAULT_DIR / f"{dv.SERVICE_POLICY}.hcl").read_text(encoding="utf-8")
    for c in (cfg, cm):
        assert c["transit_mount"] == dv.DEFAULT_TRANSIT and c["kv_mount"] == dv.DEFAULT_KV
        assert f'path "{c["transit_mount"]}/decrypt/+"' in policy
        assert f'path "{c["kv_mount"]}/data/models/*"' in policy
        assert c["approle_mount"] == "approle"


def test_no_policy_file_outside_deploy_vault() -> None:
    stray = [p for p in DEPLOY.rglob("*.hcl") if p.parent != VAULT_DIR and p.name != "openbao.hcl"]
    assert stray == [], stray
    assert {p.resolve() for p in VAULT_DIR.glob("*.hcl")} == {p.resolve() for p in Path(dv.DEFAULT_POLICY_DIR).glob("*.hcl")}
