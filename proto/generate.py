"""Regenerate the protobuf/gRPC Python code next to the ``.proto`` files.

    python -m weightseal.proto.generate            # rewrite proto/*_pb2*.py and *.pyi
    python -m weightseal.proto.generate --out DIR  # write into DIR instead (used by the test
                                                   # that proves the committed code is current)

Runs ``grpc_tools.protoc`` (from grpcio-tools) and rewrites the generated absolute imports
(``import weightseal_v1_pb2``) into package imports (``from weightseal.proto import ...``) so the
code imports as ``weightseal.proto.weightseal_v1_pb2``.  Never edit the generated files by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("weightseal_v1.proto",)
PACKAGE = "weightseal.proto"


def _rewrite_imports(text: str, modules: set[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        mod = m.group(1)
        if mod not in modules:
            return m.group(0)
        return f"from {PACKAGE} import {mod} as {m.group(2)}"

    return re.sub(r"^import (\w+_pb2) as (\w+)$", repl, text, flags=re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Generate into ``out_dir``; returns the written files (sorted)."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{HERE}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(HERE / p) for p in PROTOS],
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    modules = {p.removesuffix(".proto") + "_pb2" for p in PROTOS}
    written: list[Path] = []
    for proto in PROTOS:
        stem = proto.removesuffix(".proto")
        for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
            path = out_dir / name
            text = path.read_text(encoding="utf-8")
            path.write_text(_rewrite_imports(text, modules), encoding="utf-8")
            written.append(path)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weightseal.proto.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: the proto package)")
    ns = ap.parse_args(argv)
    for p in generate(ns.out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
