"""``weightseal kms ...`` (serve, keygen, pubkey) and ``weightseal model ...`` (admin client).

Admin commands read the key service address and mutual-TLS files from options or from
``WEIGHTSEAL_ADMIN_ADDRESS``, ``WEIGHTSEAL_ADMIN_CA``, ``WEIGHTSEAL_ADMIN_CERT``,
``WEIGHTSEAL_ADMIN_KEY`` (``weightseal kms serve --dev`` prints the lines to export).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    kms = sub.add_parser("kms", help="run and manage the key service")
    ks = kms.add_subparsers(dest="kms_command", metavar="SUBCOMMAND")

    p = ks.add_parser("serve", help="run the key service (gRPC)")
    p.add_argument("--config", type=Path, help="YAML config file (WEIGHTSEAL_KMS_* env vars override it)")
    p.add_argument("--dev", action="store_true",
                   help="DEVELOPMENT mode: embedded OpenBao dev server, self-signed TLS, mock evidence allowed")
    p.add_argument("--dev-dir", type=Path, help="where --dev writes its certificates, keys and audit log")
    p.add_argument("--listen", help="release port host:port (dev default 127.0.0.1:8443)")
    p.add_argument("--admin-listen", help="admin port host:port (dev default 127.0.0.1:8444)")
    p.set_defaults(func=_cmd_serve)

    p = ks.add_parser("keygen", help="create the service signing key and nonce secret (0600) if absent")
    p.add_argument("--config", type=Path)
    p.add_argument("--signing-key", type=Path)
    p.add_argument("--nonce-secret", type=Path)
    p.set_defaults(func=_cmd_keygen)

    p = ks.add_parser("pubkey", help="print the service's Ed25519 public key (pin it in loaders)")
    p.add_argument("--config", type=Path)
    p.add_argument("--signing-key", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_pubkey)

    model = sub.add_parser("model", help="register and manage models on the key service")
    ms = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--kms", default=os.environ.get("WEIGHTSEAL_ADMIN_ADDRESS"), help="admin address host:port")
        q.add_argument("--ca", default=os.environ.get("WEIGHTSEAL_ADMIN_CA"), help="CA certificate of the key service")
        q.add_argument("--cert", default=os.environ.get("WEIGHTSEAL_ADMIN_CERT"), help="client certificate (owner identity)")
        q.add_argument("--key", default=os.environ.get("WEIGHTSEAL_ADMIN_KEY"), help="client private key")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    q = ms.add_parser("register", help="register a model with its release policy")
    q.add_argument("model_id")
    q.add_argument("--policy", type=Path, required=True)
    common(q)
    q.set_defaults(func=_cmd_model, op="register")
    q = ms.add_parser("get", help="show a model")
    q.add_argument("model_id")
    common(q)
    q.set_defaults(func=_cmd_model, op="get")
    q = ms.add_parser("list", help="list your models (admins: all)")
    common(q)
    q.set_defaults(func=_cmd_model, op="list")
    q = ms.add_parser("policy", help="policy commands")
    ps = q.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    q = ps.add_parser("set", help="replace a model's policy")
    q.add_argument("model_id")
    q.add_argument("policy", type=Path)
    q.add_argument("--expected-version", type=int, default=0, help="fail unless the policy is at this version")
    common(q)
    q.set_defaults(func=_cmd_model, op="policy_set")
    q = ms.add_parser("rotate", help="rotate the model's key (and rewrap stored data keys)")
    q.add_argument("model_id")
    q.add_argument("--no-rewrap", action="store_true")
    common(q)
    q.set_defaults(func=_cmd_model, op="rotate")
    q = ms.add_parser("retire", help="retire a model version (no longer releasable)")
    q.add_argument("model_id")
    q.add_argument("version", type=int)
    common(q)
    q.set_defaults(func=_cmd_model, op="retire")
    q = ms.add_parser("revoke", help="revoke a model (no more releases)")
    q.add_argument("model_id")
    common(q)
    q.set_defaults(func=_cmd_model, op="revoke")


# -- kms -------------------------------------------------------------------------------------------

def _key_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    from ._config import KeysConfig

    sk = getattr(args, "signing_key", None) or os.environ.get("WEIGHTSEAL_KMS_KEYS_SIGNING_KEY")
    ns = getattr(args, "nonce_secret", None) or os.environ.get("WEIGHTSEAL_KMS_KEYS_NONCE_SECRET")
    if args.config is not None:
        import yaml

        raw = yaml.safe_load(Path(args.config).read_text()) or {}
        base = Path(args.config).resolve().parent
        keys = (raw.get("keys") or {}) if isinstance(raw, dict) else {}
        d = KeysConfig()
        sk = sk or base / keys.get("signing_key", d.signing_key)
        ns = ns or base / keys.get("nonce_secret", d.nonce_secret)
    if sk is None:
        raise ConfigError("give --signing-key or --config", reason="config.invalid")
    return Path(sk), Path(ns) if ns is not None else Path(sk).with_name("nonce-secret.key")


def _cmd_keygen(args: argparse.Namespace) -> int:
    from weightseal.proto._release_crypto import service_key_id

    from ._config import load_or_create_nonce_secret, load_or_create_signing_key

    sk, ns = _key_paths(args)
    existed = sk.exists(), ns.exists()
    key = load_or_create_signing_key(sk)
    load_or_create_nonce_secret(ns)
    pub = bytes(key.verify_key)
    print(f"signing key:  {sk} ({'existing' if existed[0] else 'created, 0600'})")
    print(f"nonce secret: {ns} ({'existing' if existed[1] else 'created, 0600'})")
    print(f"public key:   {pub.hex()}  ({service_key_id(pub)})")
    return 0


def _cmd_pubkey(args: argparse.Namespace) -> int:
    from weightseal.proto._release_crypto import service_key_id

    from ._config import load_or_create_signing_key

    sk, _ = _key_paths(args)
    pub = bytes(load_or_create_signing_key(sk, create=False).verify_key)
    if args.json:
        print(json.dumps({"public_key": pub.hex(), "key_id": service_key_id(pub)}))
    else:
        print(pub.hex())
    return 0


def _setup_logging(json_logs: bool) -> None:
    from ._server import JsonLogFormatter

    root = logging.getLogger()
    if json_logs:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(JsonLogFormatter())
        root.handlers[:] = [h]
    if root.level > logging.INFO or root.level == logging.NOTSET:
        logging.getLogger("weightseal").setLevel(logging.INFO)


def _wait_for_signal(server: Any) -> None:
    done = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger("weightseal.kms").info("signal %d: draining and shutting down", signum)
        done.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    from ._config import load_config
    from ._server import serve

    if args.dev:
        return _serve_dev(args)
    over: dict[str, Any] = {}
    if args.listen:
        over["listen"] = args.listen
    if args.admin_listen:
        over["admin_listen"] = args.admin_listen
    cfg = load_config(args.config, **over)
    if cfg.dev:
        raise ConfigError("dev: true in a config file is refused; use `weightseal kms serve --dev`", reason="config.invalid")
    _setup_logging(cfg.log_json)
    server = serve(cfg)
    print(f"weightseal key service: release {server.address}, admin {server.admin_address}, "
          f"key {server.public_key.hex()} ({server.service_key_id})", file=sys.stderr, flush=True)
    _wait_for_signal(server)
    return 0


def _serve_dev(args: argparse.Namespace) -> int:
    from weightseal.attest._policy import Policy

    from ._config import AuditConfig, AuthConfig, KeysConfig, MetricsConfig, TlsConfig, load_config
    from ._devcerts import DevPki
    from ._devvault import DevVault, setup_vault
    from ._server import serve
    from ._vault import login_approle

    d = args.dev_dir or Path(tempfile.mkdtemp(prefix="weightseal-dev-"))
    d.mkdir(parents=True, exist_ok=True)
    pki = DevPki("weightseal DEVELOPMENT CA")
    ca = pki.write_ca(d)
    sc, sk = pki.write(d, "server", pki.server())
    owner_uri = "spiffe://weightseal.dev/owner/dev"
    admin_uri = "spiffe://weightseal.dev/admin/dev"
    oc, ok = pki.write(d, "owner", pki.client("dev-owner", owner_uri))
    ac, ak = pki.write(d, "admin", pki.client("dev-admin", admin_uri))
    with DevVault() as dv:
        creds = setup_vault(dv.client())
        client = login_approle(dv.address, creds.role_id, creds.secret_id)
        cfg = load_config(
            None, dev=True,
            listen=args.listen or "127.0.0.1:8443", admin_listen=args.admin_listen or "127.0.0.1:8444",
            tls=TlsConfig(cert=str(sc), key=str(sk), client_ca=str(ca)),
            auth=AuthConfig(admins=(admin_uri,)),
            keys=KeysConfig(signing_key=str(d / "service-signing.key"), nonce_secret=str(d / "nonce-secret.key")),
            audit=AuditConfig(path=str(d / "audit.jsonl"), replica="dev"),
            metrics=MetricsConfig(listen="127.0.0.1:0"),
        )
        for host in (cfg.listen, cfg.admin_listen):
            if not host.startswith(("127.", "localhost", "[::1]")):
                raise ConfigError("development mode listens on loopback only", reason="config.invalid")
        _setup_logging(False)
        server = serve(cfg, vault_client=client)
        example = Policy.mock_dev("00" * 48, model_versions=[1]).to_dict()
        (d / "mock-policy.json").write_text(json.dumps(example, indent=2) + "\n")
        bar = "!" * 78
        print(f"""{bar}
!!  weightseal key service in DEVELOPMENT MODE -- NOT FOR PRODUCTION
!!  * in-memory OpenBao dev server at {dv.address} (everything is lost on exit)
!!  * UNSAFE software mock attestation is ACCEPTED for models whose policy names it
!!  * throw-away self-signed certificates in {d}
{bar}
release (TEEs):  {server.address}   (TLS, CA {ca})
admin (owners):  {server.admin_address}   (mutual TLS)
metrics:         http://127.0.0.1:{server.metrics_port}/metrics
service public key (pin this): {server.public_key.hex()}  ({server.service_key_id})
audit log:       {cfg.audit.path}
example policy:  {d / 'mock-policy.json'}

owner credential:
  export WEIGHTSEAL_ADMIN_ADDRESS={server.admin_address}
  export WEIGHTSEAL_ADMIN_CA={ca}
  export WEIGHTSEAL_ADMIN_CERT={oc}
  export WEIGHTSEAL_ADMIN_KEY={ok}
admin (audit) credential: --cert {ac} --key {ak}
Ctrl-C stops.""", flush=True)
        _wait_for_signal(server)
    return 0


# -- model -----------------------------------------------------------------------------------------

def _summary_dict(s: Any) -> dict[str, Any]:
    return {
        "model_id": s.model_id, "owner": s.owner, "policy_digest": s.policy_digest, "policy_version": s.policy_version,
        "latest_version": s.latest_version, "revoked": s.revoked,
        "versions": [{"version": v.version, "retired": v.retired, "key_id": v.key_id} for v in s.versions],
    }


def _print_summary(s: Any, as_json: bool) -> None:
    d = _summary_dict(s)
    if as_json:
        print(json.dumps(d, sort_keys=True))
        return
    vers = ", ".join(f"v{v['version']}{' (retired)' if v['retired'] else ''} [{v['key_id']}]" for v in d["versions"]) or "none"
    print(f"{d['model_id']}  owner={d['owner']}  policy v{d['policy_version']} {d['policy_digest']}"
          f"{'  REVOKED' if d['revoked'] else ''}\n  versions: {vers}")


def _cmd_model(args: argparse.Namespace) -> int:
    from ._admin_client import AdminClient

    if not args.kms:
        raise ConfigError("no key service address: give --kms or set WEIGHTSEAL_ADMIN_ADDRESS", reason="config.invalid")
    with AdminClient(args.kms, ca=args.ca, cert=args.cert, key=args.key) as c:
        op = args.op
        if op == "register":
            _print_summary(c.register(args.model_id, Path(args.policy).read_text(encoding="utf-8")), args.json)
        elif op == "get":
            _print_summary(c.get(args.model_id), args.json)
        elif op == "list":
            models = c.list()
            if args.json:
                print(json.dumps([_summary_dict(m) for m in models], sort_keys=True))
            else:
                for m in models:
                    _print_summary(m, False)
        elif op == "policy_set":
            _print_summary(c.set_policy(args.model_id, Path(args.policy).read_text(encoding="utf-8"),
                                        args.expected_version), args.json)
        elif op == "rotate":
            r = c.rotate(args.model_id, rewrap=not args.no_rewrap)
            print(json.dumps({"key_version": r.key_version, "rewrapped": r.rewrapped}) if args.json
                  else f"key version {r.key_version}; rewrapped {r.rewrapped} data key(s)")
        elif op == "retire":
            _print_summary(c.retire(args.model_id, args.version), args.json)
        elif op == "revoke":
            _print_summary(c.revoke(args.model_id), args.json)
    return 0

