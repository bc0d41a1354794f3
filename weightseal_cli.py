"""The ``weightseal`` command: one thin dispatcher over the per-package commands.

Each package contributes its own sub-commands through ``cli.register(subparsers)``:
``weightseal.loader.cli`` (keygen, seal, inspect, verify, unseal, load),
``weightseal.attest.cli`` (attest ...), ``weightseal.kms.cli`` (kms, model, audit).
This is the only module that reaches into both the loader and the key service: it adds the
key-service key source to ``weightseal seal`` (``--kms``: a fresh model version and its DEK from
the key service, sealed with ``key_ref={"source": "kms", ...}``) and the attested-release options to
``weightseal load`` (``--kms``, from ``weightseal.loader._kms_cli``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

_PACKAGES = ("weightseal.loader.cli", "weightseal.attest.cli", "weightseal.kms.cli", "weightseal.kms._audit_cli", "weightseal_demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weightseal",
        description="Keep model weights encrypted everywhere except inside an attested TEE.",
    )
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in _PACKAGES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:  # a package without commands yet
            if exc.name != modname:
                raise
            continue
        mod.register(sub)
    _extend_key_sources(sub)
    return parser


# -- key-service key sources for the loader's seal/load ----------------------------------------------

def _extend_key_sources(sub: Any) -> None:
    choices = getattr(sub, "choices", {})
    if "load" in choices:
        from weightseal.loader._kms_cli import extend_load_parser

        extend_load_parser(choices["load"])
    if "seal" in choices:
        _extend_seal_parser(choices["seal"])


def _extend_seal_parser(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("key from the key service (instead of --key-file)")
    g.add_argument("--kms", metavar="HOST:PORT", default=None,
                   help="key service ADMIN address: creates a new model version and seals with its data key "
                        "(env WEIGHTSEAL_ADMIN_ADDRESS)")
    g.add_argument("--ca", "--tls-ca", dest="tls_ca", metavar="FILE", default=os.environ.get("WEIGHTSEAL_ADMIN_CA"),
                   help="CA certificate of the key service (env WEIGHTSEAL_ADMIN_CA)")
    g.add_argument("--cert", metavar="FILE", default=os.environ.get("WEIGHTSEAL_ADMIN_CERT"),
                   help="owner client certificate, mutual TLS (env WEIGHTSEAL_ADMIN_CERT)")
    g.add_argument("--key", metavar="FILE", default=os.environ.get("WEIGHTSEAL_ADMIN_KEY"),
                   help="owner client private key (env WEIGHTSEAL_ADMIN_KEY)")
    for act in p._actions:
        if act.dest == "key_file":
            act.required = False
            act.help = "local key file (offline/test KEK); or use --kms"
    local = p.get_default("func")

    def handler(args: argparse.Namespace) -> int:
        from weightseal.loader import SealedFormatError

        if args.kms and args.key_file:
            raise SealedFormatError("give either --kms or --key-file, not both", reason="loader.args")
        if args.kms:
            return _seal_kms_command(args)
        if not args.key_file:
            raise SealedFormatError("no key source: give --kms HOST:PORT (key service) or --key-file FILE",
                                    reason="loader.args")
        return int(local(args) or 0)

    p.set_defaults(func=handler)


def seal_with_kms(src: str | os.PathLike[str], out: str | os.PathLike[str], *, model_id: str, admin: Any,
                  **seal_kwargs: Any) -> Any:
    """Seal ``src`` with the data key of a NEW model version created on the key service.

    ``admin``: a ``weightseal.kms.AdminClient`` authenticated as the model's owner.  The version
    number comes from the service; the manifest records ``key_ref = {"source": "kms", "model_id",
    "model_version", "key_id"}`` (no key material).  The DEK is wiped when done."""
    from weightseal.loader import DataKey, seal_checkpoint

    version, raw = admin.create_version(model_id)
    try:
        key = DataKey(raw)
    finally:
        raw[:] = bytes(len(raw))
    key_id = ""
    try:
        for v in admin.get(model_id).versions:
            if int(v.version) == int(version):
                key_id = str(v.key_id)
    except Exception:  # noqa: BLE001 - key_id is informational only
        key_id = ""
    try:
        return seal_checkpoint(src, out, model_id=model_id, model_version=int(version), key=key,
                               key_ref={"source": "kms", "model_id": model_id, "model_version": int(version),
                                        "key_id": key_id}, **seal_kwargs)
    finally:
        key.wipe()


def _seal_kms_command(args: argparse.Namespace) -> int:
    from weightseal.kms import AdminClient

    with AdminClient(args.kms, ca=args.tls_ca, cert=args.cert, key=args.key) as c:
        rep = seal_with_kms(args.src, args.out, model_id=args.model_id, admin=c, conceal_header=args.conceal_header,
                            chunk_size=args.chunk_size, workers=args.workers, progress=not args.quiet)
    print(f"sealed {rep.tensors} tensors in {len(rep.shards)} shard(s), {rep.plaintext_bytes / 1e9:.3f} GB "
          f"in {rep.seconds:.2f} s ({rep.gb_per_s:.2f} GB/s) -> {rep.out_dir}")
    print(f"model {rep.model_id} version {rep.model_version} (assigned by the key service; key "
          f"{rep.key_ref.get('key_id') or 'vault'}); loaders obtain the key by attested release")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    from weightseal.attest import WeightsealError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
    except WeightsealError as exc:
        print(f"weightseal: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
