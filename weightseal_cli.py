"""The ``weightseal`` command: one thin dispatcher over the per-package commands.

Each package contributes its own sub-commands through ``cli.register(subparsers)``:
``weightseal.loader.cli`` (keygen, seal, inspect, verify, unseal, load),
``weightseal.attest.cli`` (attest ...), ``weightseal.kms.cli`` (kms, model, audit).
This is the only module that reaches into both the loader and the key service.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    return parser


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
