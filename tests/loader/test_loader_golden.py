"""Golden test vectors: a tiny deterministic sealing (fixed DEK, injected salts) whose bytes are
pinned in data/golden_v1.json.  Any change to the format's bytes fails here.

Regenerate (only for a deliberate format change, with a new version number):
    python tests/loader/test_loader_golden.py --update
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest
import torch
from conftest import FIXED_DEK, det_rng, write_raw_safetensors
from weightseal.loader import DataKey, load_sealed, seal_checkpoint, unseal_checkpoint

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_v1.json"
ENTRIES = [
    ("a", "F32", [2, 3], struct.pack("<6f", 1, 2, 3, 4, 5, 6)),
    ("b", "BF16", [3], bytes.fromhex("803f0040403f")),
    ("c", "BOOL", [], b"\x01"),
    ("d", "I64", [0], b""),
    ("e", "U8", [5000], bytes(i % 251 for i in range(5000))),
]


def _make(root: Path, conceal: bool) -> Path:
    src = root / "src"
    src.mkdir(exist_ok=True)
    write_raw_safetensors(src / "model.safetensors", ENTRIES, metadata={"format": "pt"})
    out = root / ("sealed_c" if conceal else "sealed")
    seal_checkpoint(src, out, model_id="golden/tiny", model_version=7, key=DataKey(FIXED_DEK),
                    key_ref={"source": "test"}, chunk_size=4096, conceal_header=conceal, workers=1,
                    _rng=det_rng(b"golden-v1"))
    return out


def _files(out: Path) -> dict[str, str]:
    return {p.name: p.read_bytes().hex() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("conceal", [False, True])
def test_golden_bytes(tmp_path: Path, conceal: bool) -> None:
    golden = json.loads(GOLDEN.read_text())["conceal" if conceal else "plain"]
    out = _make(tmp_path, conceal)
    files = _files(out)
    assert sorted(files) == sorted(golden["files"])
    for name, hexdata in golden["files"].items():
        assert files[name] == hexdata, f"{name} bytes changed (sha256 {hashlib.sha256(bytes.fromhex(files[name])).hexdigest()})"


@pytest.mark.parametrize("conceal", [False, True])
def test_golden_vectors_decrypt(tmp_path: Path, conceal: bool) -> None:
    """The pinned bytes (not freshly sealed ones) still open and unseal to the source."""
    golden = json.loads(GOLDEN.read_text())["conceal" if conceal else "plain"]
    d = tmp_path / "g"
    d.mkdir()
    for name, hexdata in golden["files"].items():
        (d / name).write_bytes(bytes.fromhex(hexdata))
    key = DataKey(FIXED_DEK)
    got = load_sealed(d, key)
    assert got["a"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert got["b"].dtype == torch.bfloat16 and got["b"].float().tolist() == [1.0, 2.0, 0.75]
    assert got["c"].item() is True and got["d"].shape == (0,) and got["e"][250:253].tolist() == [250, 0, 1]
    unseal_checkpoint(d, tmp_path / "plain", key)
    src = tmp_path / "src"
    src.mkdir()
    expected = write_raw_safetensors(src / "x", ENTRIES, metadata={"format": "pt"})
    assert (tmp_path / "plain" / "model.safetensors").read_bytes() == expected


def test_golden_layout_fields() -> None:
    golden = json.loads(GOLDEN.read_text())["plain"]
    shard = bytes.fromhex(golden["files"]["model.safetensors.sealed"])
    assert shard[:8] == b"\x89WSEAL\r\n"
    assert struct.unpack_from("<HHB", shard, 8) == (1, 0, 12)  # version 1, no flags, 4 KiB chunks
    assert struct.unpack_from("<QQ", shard, 48) == (4096, 5031)  # data offset, data length
    assert hashlib.sha256(shard[16:48]).digest() != bytes(32)
    man = bytes.fromhex(golden["files"]["weightseal.manifest"])
    assert man[:8] == b"\x89WSMAN\r\n" and struct.unpack_from("<HH", man, 8) == (1, 0)


if __name__ == "__main__" and "--update" in sys.argv:
    import tempfile

    data: dict[str, dict[str, dict[str, str]]] = {}
    for conceal in (False, True):
        with tempfile.TemporaryDirectory() as t:
            data["conceal" if conceal else "plain"] = {"files": _files(_make(Path(t), conceal))}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
