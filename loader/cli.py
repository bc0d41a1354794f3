"""``weightseal`` sub-commands of the loader: keygen, seal, inspect, verify, unseal, load.

Thin over the Python API.  ``seal_command(args, key, key_ref)`` and ``load_command(args, key)``
take an already-obtained key so another key source (the key service, ``--kms``) can reuse them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ._format import DEFAULT_CHUNK_SIZE
from ._keys import DataKey, LocalKey, generate_local_key_file

__all__ = ["register", "seal_command", "load_command", "keygen_command", "inspect_command",
           "verify_command", "unseal_command"]


def _key_from_args(args: argparse.Namespace) -> LocalKey:
    return LocalKey.load(args.key_file)


def keygen_command(args: argparse.Namespace) -> int:
    k = generate_local_key_file(args.out)
    print(f"wrote local key {args.out} (mode 0600, key id {k.key_id}); OFFLINE/TEST USE ONLY")
    k.wipe()
    return 0


def seal_command(args: argparse.Namespace, key: DataKey | LocalKey, key_ref: dict[str, Any] | None = None) -> int:
    from ._seal import seal_checkpoint

    rep = seal_checkpoint(args.src, args.out, model_id=args.model_id, model_version=args.model_version,
                          key=key, key_ref=key_ref, conceal_header=args.conceal_header,
                          chunk_size=args.chunk_size, workers=args.workers, progress=not args.quiet)
    print(f"sealed {rep.tensors} tensors in {len(rep.shards)} shard(s), {rep.plaintext_bytes / 1e9:.3f} GB "
          f"in {rep.seconds:.2f} s ({rep.gb_per_s:.2f} GB/s) -> {rep.out_dir}")
    return 0


def load_command(args: argparse.Namespace, key: DataKey | LocalKey) -> int:
    from ._open import load_sealed

    names = args.names.split(",") if args.names else None
    t0 = time.perf_counter()
    tensors = load_sealed(args.model_dir, key, device=args.device, names=names)
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    print(f"loaded {len(tensors)} tensors, {nbytes} bytes in {dt:.3f} s ({nbytes / dt / 1e9 if dt else 0:.2f} GB/s) "
          f"on {args.device}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    from ._open import inspect_sealed

    info = inspect_sealed(args.path)
    if args.json:
        json.dump(info, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    print("UNAUTHENTICATED view (no key used)")
    m = info.get("manifest")
    if m:
        print(f"model {m['model_id']} version {m['model_version']}, key source {m['key_ref'].get('source')}, "
              f"{len(m['shards'])} shard(s), header {'concealed' if m['concealed'] else 'visible'}")
    for s in info["shards"]:
        print(f"  {s['file']}: {s['size']} bytes, {s['chunks']} chunk(s) of {s['chunk_size']}, "
              f"{'concealed' if s['concealed'] else str(len(s['tensors'])) + ' tensors'}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from ._open import verify_sealed

    rep = verify_sealed(args.model_dir, _key_from_args(args))
    print(f"OK: {rep['model_id']} v{rep['model_version']}: {rep['shards']} shard(s), {rep['tensors']} tensors, "
          f"{rep['bytes']} bytes verified in {rep['seconds']:.2f} s")
    return 0


def unseal_command(args: argparse.Namespace) -> int:
    from ._open import unseal_checkpoint

    out = unseal_checkpoint(args.sealed, args.out, _key_from_args(args))
    print(f"unsealed to {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("keygen", help="write a new LOCAL key file (offline/test KEK, mode 0600)")
    p.add_argument("out")
    p.set_defaults(func=keygen_command)

    p = sub.add_parser("seal", help="seal a safetensors checkpoint directory")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--model-id", required=True)
    p.add_argument("--model-version", type=int, default=1)
    p.add_argument("--key-file", required=True, help="local key file from `weightseal keygen`")
    p.add_argument("--conceal-header", action="store_true", help="encrypt tensor names/shapes too")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda a: seal_command(a, _key_from_args(a)))

    p = sub.add_parser("inspect", help="show what a sealed checkpoint reveals without the key")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=inspect_command)

    p = sub.add_parser("verify", help="full integrity check of a sealed model directory")
    p.add_argument("model_dir")
    p.add_argument("--key-file", required=True)
    p.set_defaults(func=verify_command)

    p = sub.add_parser("unseal", help="write the plaintext checkpoint back (byte-identical)")
    p.add_argument("sealed")
    p.add_argument("out")
    p.add_argument("--key-file", required=True)
    p.set_defaults(func=unseal_command)

    p = sub.add_parser("load", help="load a sealed model and report throughput")
    p.add_argument("model_dir")
    p.add_argument("--key-file", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--names", default=None, help="comma-separated tensor names (default: all)")
    p.set_defaults(func=lambda a: load_command(a, _key_from_args(a)))
