"""Round trips, keys, API shape, subset loading."""

from __future__ import annotations

import copy
import json
import os
import pickle
import stat
import tempfile
from pathlib import Path

import pytest
import torch
import weightseal.loader._mem as wmem
import weightseal.loader._open as wopen
from conftest import FIXED_DEK, make_checkpoint, same, sample_tensors
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from weightseal.loader import (
    DataKey,
    IntegrityError,
    KeyFileError,
    LocalKey,
    SealedFormatError,
    TensorNotFoundError,
    generate_local_key_file,
    inspect_sealed,
    load_sealed,
    open_sealed,
    read_manifest,
    seal_checkpoint,
    unseal_checkpoint,
    verify_sealed,
)

DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32, torch.int64,
          torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.float8_e4m3fn,
          torch.float8_e5m2]


def _rand(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = 1
    for d in shape:
        n *= d
    raw = torch.randint(0, 256, (n * torch.empty(0, dtype=dtype).element_size(),), dtype=torch.uint8, generator=g)
    if dtype == torch.bool:
        raw = raw & 1
    return raw.view(dtype).reshape(shape) if n else torch.empty(shape, dtype=dtype)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 40), min_size=0, max_size=3)),
                   min_size=1, max_size=7),
    shards=st.integers(1, 3),
    chunk_shift=st.integers(12, 14),
    conceal=st.booleans(),
    alloc=st.sampled_from(["mapped", "tensor", "shard"]),
    seed=st.integers(0, 2**16),
)
# found by hypothesis in CI: an empty tensor in a shard-buffer load
@example(specs=[(torch.int16, [0])], shards=1, chunk_shift=12, conceal=False, alloc="shard", seed=0)
@example(specs=[(torch.float32, [0]), (torch.bfloat16, [3, 0])], shards=1, chunk_shift=12, conceal=True, alloc="shard", seed=1)
def test_roundtrip_property(specs: list[tuple[torch.dtype, list[int]]], shards: int, chunk_shift: int,
                            conceal: bool, alloc: str, seed: int) -> None:
    tensors = {f"t{i}": _rand(dt, tuple(shape), seed + i) for i, (dt, shape) in enumerate(specs)}
    shards = min(shards, len(tensors))
    old, old_threshold = wopen.ALLOC_MODE, wmem.MAP_THRESHOLD
    wopen.ALLOC_MODE = alloc
    wmem.MAP_THRESHOLD = 1  # every non-empty buffer gets a mapping of its own (small tensors here)
    key = DataKey(FIXED_DEK)
    try:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            src = make_checkpoint(root, tensors, shards=shards, extra=False)
            out = root / "sealed"
            rep = seal_checkpoint(src, out, model_id="prop/model", key=key, conceal_header=conceal,
                                  chunk_size=1 << chunk_shift)
            assert rep.tensors == len(tensors)
            got = load_sealed(out, key)
            assert set(got) == set(tensors)
            for n, t in tensors.items():
                assert same(got[n], t), n
            name = sorted(tensors)[len(tensors) // 2]
            sub = load_sealed(out, key, names=[name])
            assert list(sub) == [name] and same(sub[name], tensors[name])
            unseal_checkpoint(out, root / "plain", key)
            for f in src.iterdir():
                assert (root / "plain" / f.name).read_bytes() == f.read_bytes()
    finally:
        wopen.ALLOC_MODE, wmem.MAP_THRESHOLD = old, old_threshold
        key.wipe()


@pytest.mark.parametrize("conceal", [False, True])
def test_local_key_roundtrip_and_unseal_identical(tmp_path: Path, local_key: LocalKey, conceal: bool) -> None:
    tensors = sample_tensors(1)
    src = make_checkpoint(tmp_path, tensors, shards=2)
    out = tmp_path / "sealed"
    rep = seal_checkpoint(src, out, model_id="acme/m", model_version=2, key=local_key, conceal_header=conceal,
                          chunk_size=4096)
    assert rep.key_ref["source"] == "local" and rep.key_ref["kek_id"] == local_key.key_id
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "tokenizer.json", "weightseal.manifest",
         "model-00001-of-00002.safetensors.sealed", "model-00002-of-00002.safetensors.sealed"])
    # config/tokenizer copied through unchanged
    assert (out / "config.json").read_bytes() == (src / "config.json").read_bytes()
    k2 = LocalKey.load(tmp_path / "owner.key")
    got = load_sealed(out, k2, expected_model_id="acme/m", expected_model_version=2)
    assert all(same(got[n], t) for n, t in tensors.items())
    assert verify_sealed(out, k2)["tensors"] == len(tensors)
    unseal_checkpoint(out, tmp_path / "back", k2)
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == sorted(p.name for p in src.iterdir())
    for f in src.iterdir():
        assert (tmp_path / "back" / f.name).read_bytes() == f.read_bytes(), f.name
    # plain safetensors refuses the sealed file
    with pytest.raises(Exception) as ei:
        load_file(str(out / "model-00001-of-00002.safetensors.sealed"))
    assert not isinstance(ei.value, IntegrityError)


def test_datakey_properties() -> None:
    k = DataKey(FIXED_DEK)
    assert FIXED_DEK.hex() not in repr(k) and "redacted" in repr(k) and str(FIXED_DEK) not in str(k)
    with pytest.raises(TypeError):
        pickle.dumps(k)
    with pytest.raises(TypeError):
        copy.deepcopy(k)
    with pytest.raises(ValueError):
        DataKey(b"short")
    k.wipe()
    assert k.wiped and bytes(k._buf) == bytes(32)


def test_wiped_key_cannot_load(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, _ = sealed_model
    k = DataKey(FIXED_DEK)
    k.wipe()
    with pytest.raises(IntegrityError):
        load_sealed(out, k)


def test_keygen_file(tmp_path: Path) -> None:
    p = tmp_path / "k.key"
    k = generate_local_key_file(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    text = p.read_text()
    assert "OFFLINE / TEST USE ONLY" in text and "WEIGHTSEAL-LOCAL-KEK-V1" in text
    assert LocalKey.load(p) == k
    with pytest.raises(KeyFileError) as ei:
        generate_local_key_file(p)
    assert ei.value.reason == "loader.keyfile.exists"
    os.chmod(p, 0o644)
    with pytest.raises(KeyFileError) as ei:
        LocalKey.load(p)
    assert ei.value.reason == "loader.keyfile.permissions"
    bad = tmp_path / "bad.key"
    bad.write_text("WEIGHTSEAL-LOCAL-KEK-V1\nnot base64!!\n")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError) as ei:
        LocalKey.load(bad)
    assert ei.value.reason == "loader.keyfile.invalid"
    with pytest.raises(KeyFileError) as ei:
        LocalKey.load(tmp_path / "missing.key")
    assert ei.value.reason == "loader.keyfile.unreadable"
    with pytest.raises(TypeError):
        pickle.dumps(k)


def test_wrong_local_key_and_wrong_data_key(tmp_path: Path, local_key: LocalKey) -> None:
    src = make_checkpoint(tmp_path, sample_tensors(), shards=1)
    out = tmp_path / "sealed"
    seal_checkpoint(src, out, model_id="m", key=local_key, chunk_size=4096)
    other = generate_local_key_file(tmp_path / "other.key")
    with pytest.raises(IntegrityError) as ei:
        load_sealed(out, other)
    assert ei.value.reason == "integrity" and str(ei.value) == "integrity: sealed checkpoint failed integrity verification"
    with pytest.raises(IntegrityError):
        load_sealed(out, DataKey(FIXED_DEK))


def test_manifest_public_view(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, _ = sealed_model
    m = read_manifest(out)
    assert (m.model_id, m.model_version) == ("acme/tiny", 3)
    assert m.key_ref == {"source": "vault", "key": "acme-tiny"}
    assert [s.name for s in m.shards] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert all(s.size == (out / s.file).stat().st_size for s in m.shards)
    assert m.index is not None and m.index["encrypted"] is False


def test_expected_model_mismatch(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]], data_key: DataKey) -> None:
    _, out, _ = sealed_model
    with pytest.raises(IntegrityError):
        load_sealed(out, data_key, expected_model_id="acme/other")
    with pytest.raises(IntegrityError):
        load_sealed(out, data_key, expected_model_version=2)
    assert len(load_sealed(out, data_key, expected_model_id="acme/tiny", expected_model_version=3)) == 9


def test_open_sealed_api(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]], data_key: DataKey) -> None:
    src, out, tensors = sealed_model
    with open_sealed(out, data_key) as f:
        assert f.keys() == sorted(tensors)
        assert f.metadata() is not None and f.metadata()["format"] == "pt"
        assert same(f.get_tensor("ids"), tensors["ids"])
        with pytest.raises(TensorNotFoundError) as ei:
            f.get_tensor("nope")
        assert ei.value.reason == "loader.tensor.not_found"
    first = load_file(str(src / "model-00001-of-00002.safetensors"))
    with open_sealed(out / "model-00001-of-00002.safetensors.sealed", data_key) as f:
        assert f.keys() == sorted(first)
        assert f.metadata() == {"format": "pt", "shard": "0"}
        for n in first:
            assert same(f.get_tensor(n), first[n])


def test_subset_touches_only_needed_chunks(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]],
                                           data_key: DataKey) -> None:
    _, out, tensors = sealed_model
    calls: list[tuple[str, int]] = []
    wopen._DECRYPT_HOOK = lambda shard, i: calls.append((shard, i))
    try:
        got = load_sealed(out, data_key, names=["layers.0.norm"])
        assert list(got) == ["layers.0.norm"] and same(got["layers.0.norm"], tensors["layers.0.norm"])
        # layers.0.norm is 66 bytes: exactly one chunk (or two if it straddles a boundary)
        assert 1 <= len(calls) <= 2 and len({s for s, _ in calls}) == 1
        n_sub = len(calls)
        calls.clear()
        load_sealed(out, data_key)
        total = sum(1 for _ in calls)
        assert total > n_sub
    finally:
        wopen._DECRYPT_HOOK = None


def test_subset_ignores_corruption_elsewhere(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]],
                                             data_key: DataKey) -> None:
    """Tensor-parallel loads read only their chunks: corrupting another tensor's chunk does not
    affect them (the full load and verify still catch it)."""
    _, out, tensors = sealed_model
    with open_sealed(out, data_key) as f:
        sh = f._model.where["embed.weight"]
        emb = sh.st.tensors["embed.weight"]
        emb_chunks = set(sh.chunks_for(emb.begin, emb.end))
        chunk = next(i for i in range(sh.pre.n_chunks) if i not in emb_chunks)
        target = next(n for n, t in sh.st.tensors.items() if chunk in sh.chunks_for(t.begin, t.end))
        path, doff, cs = sh.path, sh.pre.data_offset, sh.chunk_size
    with open(path, "r+b") as fh:
        fh.seek(doff + chunk * cs)
        b = fh.read(1)
        fh.seek(doff + chunk * cs)
        fh.write(bytes([b[0] ^ 1]))
    got = load_sealed(out, data_key, names=["embed.weight"])
    assert same(got["embed.weight"], tensors["embed.weight"])
    with pytest.raises(IntegrityError):
        load_sealed(out, data_key, names=[target])
    with pytest.raises(IntegrityError):
        verify_sealed(out, data_key)


def test_inspect_reveals_only_public(tmp_path: Path, data_key: DataKey) -> None:
    src = make_checkpoint(tmp_path, sample_tensors(), shards=2)
    seal_checkpoint(src, tmp_path / "open", model_id="m", key=data_key, chunk_size=4096)
    seal_checkpoint(src, tmp_path / "hidden", model_id="m", key=data_key, chunk_size=4096, conceal_header=True)
    info = inspect_sealed(tmp_path / "open")
    assert info["authenticated"] is False
    assert "embed.weight" in json.dumps(info)
    hidden = inspect_sealed(tmp_path / "hidden")
    blob = json.dumps(hidden)
    assert "embed.weight" not in blob and "layers" not in blob
    assert hidden["manifest"]["index"]["encrypted"] is True
    for f in (tmp_path / "hidden").glob("*.sealed"):
        assert b"embed.weight" not in f.read_bytes() and b"layers.0" not in f.read_bytes()
    assert b"embed.weight" not in (tmp_path / "hidden" / "weightseal.manifest").read_bytes()
    assert all(s["concealed"] for s in hidden["shards"])


def test_sealer_owner_errors(tmp_path: Path, data_key: DataKey) -> None:
    src = make_checkpoint(tmp_path, sample_tensors(), shards=1)
    with pytest.raises(SealedFormatError) as ei:
        seal_checkpoint(src, tmp_path / "o", model_id="m", key=data_key, chunk_size=5000)
    assert ei.value.reason == "loader.args"
    (tmp_path / "exists").mkdir()
    with pytest.raises(SealedFormatError):
        seal_checkpoint(src, tmp_path / "exists", model_id="m", key=data_key)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SealedFormatError) as ei:
        seal_checkpoint(empty, tmp_path / "o2", model_id="m", key=data_key)
    assert ei.value.reason == "loader.source.empty"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(SealedFormatError) as ei:
        seal_checkpoint(bad, tmp_path / "o3", model_id="m", key=data_key)
    assert ei.value.reason == "loader.source.header"
    # nothing partial left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "empty", "exists", "src"]


def test_seal_memory_is_bounded(tmp_path: Path, data_key: DataKey) -> None:
    """Sealing streams: per-worker buffers are one chunk each, independent of the shard size."""
    import tracemalloc

    g = torch.Generator().manual_seed(0)
    src = make_checkpoint(tmp_path, {"w": torch.randn(2048, 2048, generator=g)}, shards=1, extra=False)  # 16 MiB
    tracemalloc.start()
    seal_checkpoint(src, tmp_path / "o", model_id="m", key=data_key, chunk_size=1 << 20, workers=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, peak  # the shard is 16 MiB
