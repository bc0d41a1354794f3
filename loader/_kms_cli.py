"""``weightseal load MODEL_DIR --kms ADDR --service-key HEX|FILE ...``: attested key release.

The loader's ``cli.py`` registers ``load`` with a local ``--key-file``; :func:`extend_load_parser`
adds the key-service options to that same parser (the dispatcher calls it after every package
registered its commands) and makes the handler pick the key source: ``--kms`` (attested release)
or ``--key-file`` (offline/test), exactly one of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["extend_load_parser", "add_kms_load_options", "kms_load_command", "target_from_args"]


def add_kms_load_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attested key release (key service)")
    g.add_argument("--kms", metavar="HOST:PORT", default=None,
                   help="key service release address; the key is released only to attested TEEs")
    g.add_argument("--service-key", metavar="HEX|FILE", default=None,
                   help="PINNED Ed25519 public key of the key service (`weightseal kms pubkey`)")
    g.add_argument("--ca", metavar="FILE", default=None, help="CA certificate that issued the service's TLS cert")
    g.add_argument("--insecure-dev", action="store_true",
                   help="plaintext channel to a DEVELOPMENT key service (never in production)")
    g.add_argument("--server-name", default=None, help="TLS host name to expect, if not the address's")
    g.add_argument("--attester", choices=["auto", "snp", "tdx", "mock"], default="auto",
                   help="evidence source (default auto: the TEE on this machine; the mock only when named)")
    g.add_argument("--mock-key", metavar="FILE", default=None,
                   help="UNSAFE mock platform key file (with --attester mock; development only)")
    g.add_argument("--mock-measurement", metavar="HEX", default=None,
                   help="96 hex digits the mock reports as its measurement (default zeros)")
    g.add_argument("--gpus", choices=["auto", "none", "required"], default="auto", help="GPU evidence")
    g.add_argument("--retries", type=int, default=5, help="attempts while the service is UNAVAILABLE")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def target_from_args(args: argparse.Namespace) -> Any:
    from ._release_client import KeyReleaseError, KmsTarget, RetryPolicy

    if not args.service_key:
        raise KeyReleaseError("--kms needs --service-key (the key service's pinned public key)",
                              reason="kms.service_key")
    return KmsTarget(args.kms, args.service_key, ca=args.ca, insecure_dev=bool(args.insecure_dev),
                     server_name=args.server_name, retry=RetryPolicy(attempts=max(1, int(args.retries))))


def _measurement(args: argparse.Namespace) -> bytes:
    from ._release_client import KeyReleaseError

    if args.mock_measurement is None:
        return bytes(48)
    try:
        m = bytes.fromhex(args.mock_measurement)
    except ValueError:
        m = b""
    if len(m) != 48:
        raise KeyReleaseError("--mock-measurement must be 96 hex digits", reason="kms.config")
    return m


def kms_load_command(args: argparse.Namespace) -> int:
    from ._release_client import LoadReport, load_model

    target = target_from_args(args)
    if args.attester == "mock":
        print("WARNING: UNSAFE software mock attestation (development only; proves nothing about hardware)",
              file=sys.stderr)
    names = args.names.split(",") if args.names else None
    rep = LoadReport()
    bar: Any = None
    cb: Callable[[int], None] | None = None
    if not args.no_progress:
        from tqdm import tqdm

        from ._manifest import read_manifest

        total = sum(s.size for s in read_manifest(args.model_dir).shards)
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="decrypting", file=sys.stderr)
        cb = bar.update
    t0 = time.perf_counter()
    try:
        tensors = load_model(args.model_dir, kms=target, device=args.device, attester=args.attester, names=names,
                             mock_key=args.mock_key, mock_measurement=_measurement(args), gpus=args.gpus,
                             progress=cb, report=rep)
        if bar is not None:  # the total was estimated from sealed sizes: end exactly at 100 %
            bar.total = bar.n
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    dt = time.perf_counter() - t0
    info = rep.release
    assert info is not None
    print(f"key released for {info.model_id} v{info.model_version} by {info.service_key_id} "
          f"(policy {info.policy_digest}, audit record {info.audit_hash[:16]}...) in {rep.release_seconds:.3f} s")
    print(f"loaded {len(tensors)} tensors, {rep.bytes} bytes in {rep.load_seconds:.3f} s "
          f"({rep.gb_per_s:.2f} GB/s) on {args.device}; total {dt:.3f} s")
    return 0


def extend_load_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``--kms`` options to an existing ``load`` parser and wrap its handler."""
    add_kms_load_options(p)
    for act in p._actions:
        if act.dest == "key_file":
            act.required = False
            act.help = "local key file (offline/test); or use --kms"
    local = p.get_default("func")

    def handler(args: argparse.Namespace) -> int:
        from ._release_client import KeyReleaseError

        if args.kms and getattr(args, "key_file", None):
            raise KeyReleaseError("give either --kms or --key-file, not both", reason="kms.config")
        if args.kms:
            return kms_load_command(args)
        if not getattr(args, "key_file", None):
            raise KeyReleaseError("no key source: give --kms ADDR --service-key KEY (attested) or --key-file F",
                                  reason="kms.config")
        if local is None:
            raise KeyReleaseError("local load is not available", reason="kms.config")
        return int(local(args) or 0)

    p.set_defaults(func=handler)
