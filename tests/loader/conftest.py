"""Fixtures and helpers for the loader tests."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from weightseal.loader import DataKey, LocalKey, generate_local_key_file, seal_checkpoint

FIXED_DEK = bytes(range(1, 33))


def write_raw_safetensors(path: Path, entries: list[tuple[str, str, list[int], bytes]],
                          metadata: dict[str, str] | None = None, pad_to: int = 8) -> bytes:
    """Hand-built safetensors file (independent of the safetensors writer's byte choices)."""
    hdr: dict[str, Any] = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    data = b""
    for name, dt, shape, raw in entries:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    hj = json.dumps(hdr, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % pad_to)
    blob = struct.pack("<Q", len(hj)) + hj + data
    path.write_bytes(blob)
    return blob


def det_rng(seed: bytes = b"golden") -> Callable[[int], bytes]:
    """Deterministic randomness for golden vectors (tests only)."""
    import hashlib

    counter = [0]

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + counter[0].to_bytes(8, "big")).digest()
            counter[0] += 1
        return out[:n]

    return rng


def sample_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(64, 48, generator=g).to(torch.bfloat16),
        "layers.0.attn.q": torch.randn(40, 40, generator=g),
        "layers.0.norm": torch.randn(33, generator=g).to(torch.float16),
        "layers.0.mask": torch.rand(5, 7, generator=g) > 0.5,
        "layers.0.fp8": torch.randn(17, 3, generator=g).to(torch.float8_e4m3fn),
        "layers.0.fp8b": torch.randn(9, generator=g).to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4, dtype=torch.int32),
        "ids": torch.arange(3000, dtype=torch.int64),
    }


def make_checkpoint(root: Path, tensors: dict[str, torch.Tensor], shards: int = 1,
                    index: bool = True, extra: bool = True) -> Path:
    src = root / "src"
    src.mkdir()
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map = {}
    for s in range(shards):
        part = {n: tensors[n].contiguous() for n in names[s * per:(s + 1) * per]}
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors" if shards > 1 else "model.safetensors"
        save_file(part, str(src / fname), metadata={"format": "pt", "shard": str(s)})
        weight_map.update({n: fname for n in part})
    if index and shards > 1:
        (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    if extra:
        (src / "config.json").write_text('{"model_type": "test", "hidden": 48}\n')
        (src / "tokenizer.json").write_text('{"vocab": {"a": 0}}\n')
    return src


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool(torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))


@pytest.fixture
def data_key() -> Iterator[DataKey]:
    k = DataKey(FIXED_DEK)
    yield k
    k.wipe()


@pytest.fixture
def local_key(tmp_path: Path) -> LocalKey:
    return generate_local_key_file(tmp_path / "owner.key")


@pytest.fixture
def sealed_model(tmp_path: Path, data_key: DataKey) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    tensors = sample_tensors()
    src = make_checkpoint(tmp_path, tensors, shards=2)
    out = tmp_path / "sealed"
    seal_checkpoint(src, out, model_id="acme/tiny", model_version=3, key=data_key,
                    key_ref={"source": "vault", "key": "acme-tiny"}, chunk_size=4096)
    return src, out, tensors
