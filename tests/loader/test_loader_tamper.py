"""Tamper matrix: every modification must raise IntegrityError (reason "integrity"), return no
tensors, and leave no decrypted plaintext behind."""

from __future__ import annotations

import hashlib
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import weightseal.loader._format as F
import weightseal.loader._mem as wmem
import weightseal.loader._open as wopen
from conftest import FIXED_DEK, make_checkpoint, sample_tensors
from weightseal.loader import DataKey, IntegrityError, load_sealed, seal_checkpoint, verify_sealed
from weightseal.loader._manifest import ShardEntry, authenticate_manifest, read_manifest

SHARD1 = "model-00001-of-00002.safetensors.sealed"
SHARD2 = "model-00002-of-00002.safetensors.sealed"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    src = make_checkpoint(root, sample_tensors(), shards=2)
    key = DataKey(FIXED_DEK)
    seal_checkpoint(src, root / "sealed", model_id="acme/tiny", model_version=3, key=key, chunk_size=4096)
    seal_checkpoint(src, root / "sealed_c", model_id="acme/tiny", model_version=3, key=key, chunk_size=4096,
                    conceal_header=True)
    seal_checkpoint(src, root / "v2", model_id="acme/tiny", model_version=2, key=key, chunk_size=4096)
    seal_checkpoint(src, root / "other", model_id="acme/other", model_version=3, key=key, chunk_size=4096)
    return root


def _layout(path: Path) -> dict[str, Any]:
    b = path.read_bytes()
    pre = F.parse_preamble(b[:F.PREAMBLE_LEN], len(b))
    return {"pre": pre, "hdr": F.PREAMBLE_LEN, "tags": F.PREAMBLE_LEN + pre.header_len,
            "data": pre.data_offset, "cs": pre.chunk_size, "n": pre.n_chunks, "size": len(b)}


def _flip(path: Path, off: int, bit: int = 0) -> None:
    b = bytearray(path.read_bytes())
    b[off] ^= 1 << bit
    path.write_bytes(bytes(b))


@pytest.fixture
def model(tmp_path: Path, pristine: Path) -> Path:
    d = tmp_path / "m"
    shutil.copytree(pristine / "sealed", d)
    return d


def _assert_fails(d: Path, **kw: Any) -> None:
    key = DataKey(FIXED_DEK)
    got: Any = None
    with pytest.raises(IntegrityError) as ei:
        got = load_sealed(d, key, **kw)
    assert got is None
    assert ei.value.reason == "integrity"
    assert str(ei.value) == "integrity: sealed checkpoint failed integrity verification"
    with pytest.raises(IntegrityError):
        verify_sealed(d, key)


def _region_offsets() -> dict[str, Callable[[dict[str, Any]], int]]:
    return {
        "magic": lambda L: 0,
        "magic_last": lambda L: 7,
        "version": lambda L: 8,
        "flags": lambda L: 10,
        "flags_high": lambda L: 11,
        "chunk_shift": lambda L: 12,
        "reserved": lambda L: 14,
        "salt": lambda L: 20,
        "data_offset": lambda L: 49,
        "data_len": lambda L: 56,
        "header_len": lambda L: 64,
        "reserved2": lambda L: 70,
        "header_meta": lambda L: L["hdr"] + 10,
        "header_st_json": lambda L: L["hdr"] + 150,
        "header_tag": lambda L: L["tags"] - 1,
        "tag_first": lambda L: L["tags"],
        "tag_last": lambda L: L["tags"] + 16 * L["n"] - 1,
        "padding": lambda L: L["data"] - 1,
        "chunk_first": lambda L: L["data"],
        "chunk_middle": lambda L: L["data"] + L["cs"] * (L["n"] // 2) + 17,
        "chunk_last": lambda L: L["size"] - 1,
    }


@pytest.mark.parametrize("region", list(_region_offsets()))
@pytest.mark.parametrize("shard", [SHARD1, SHARD2])
def test_bitflip_each_region(model: Path, region: str, shard: str) -> None:
    L = _layout(model / shard)
    assert L["n"] >= 3 and L["data"] - L["tags"] - 16 * L["n"] > 0  # the regions exist
    _flip(model / shard, _region_offsets()[region](L), bit=3)
    _assert_fails(model)


@pytest.mark.parametrize("where", ["magic", "version", "flags", "body", "body_last", "tag", "tag_last"])
def test_bitflip_manifest(model: Path, where: str) -> None:
    p = model / F.MANIFEST_NAME
    size = p.stat().st_size
    off = {"magic": 1, "version": 8, "flags": 10, "body": 40, "body_last": size - 33, "tag": size - 32,
           "tag_last": size - 1}[where]
    _flip(p, off)
    _assert_fails(model)


@pytest.mark.parametrize("cut", ["at_chunk_boundary", "between_boundaries", "inside_tags", "inside_header",
                                 "preamble", "empty"])
def test_truncation(model: Path, cut: str) -> None:
    p = model / SHARD1
    L = _layout(p)
    n = {"at_chunk_boundary": L["data"] + L["cs"] * (L["n"] - 1), "between_boundaries": L["data"] + L["cs"] + 100,
         "inside_tags": L["tags"] + 20, "inside_header": L["hdr"] + 5, "preamble": 30, "empty": 0}[cut]
    with open(p, "r+b") as fh:
        fh.truncate(n)
    _assert_fails(model)


def test_append_bytes(model: Path) -> None:
    with open(model / SHARD2, "ab") as fh:
        fh.write(b"\0" * 16)
    _assert_fails(model)


def test_append_a_whole_chunk_with_fixed_preamble(model: Path) -> None:
    """Extending the data region and patching data_len in the preamble: header tag fails."""
    p = model / SHARD1
    b = bytearray(p.read_bytes())
    L = _layout(p)
    b += b[L["data"]:L["data"] + L["cs"]]
    struct.pack_into("<Q", b, 56, L["pre"].data_len + L["cs"])
    p.write_bytes(bytes(b))
    _assert_fails(model)


def test_swap_two_chunks(model: Path) -> None:
    p = model / SHARD1
    L = _layout(p)
    b = bytearray(p.read_bytes())
    d, cs, t = L["data"], L["cs"], L["tags"]
    c0, c1 = bytes(b[d:d + cs]), bytes(b[d + cs:d + 2 * cs])
    b[d:d + cs], b[d + cs:d + 2 * cs] = c1, c0
    g0, g1 = bytes(b[t:t + 16]), bytes(b[t + 16:t + 32])
    b[t:t + 16], b[t + 16:t + 32] = g1, g0  # tags moved along with their chunks
    p.write_bytes(bytes(b))
    _assert_fails(model)


def test_duplicate_chunk(model: Path) -> None:
    p = model / SHARD1
    L = _layout(p)
    b = bytearray(p.read_bytes())
    d, cs, t = L["data"], L["cs"], L["tags"]
    b[d + cs:d + 2 * cs] = b[d:d + cs]
    b[t + 16:t + 32] = b[t:t + 16]
    p.write_bytes(bytes(b))
    _assert_fails(model)


def test_swap_two_shards(model: Path) -> None:
    a, b = (model / SHARD1).read_bytes(), (model / SHARD2).read_bytes()
    (model / SHARD1).write_bytes(b)
    (model / SHARD2).write_bytes(a)
    _assert_fails(model)


def test_drop_a_shard(model: Path) -> None:
    (model / SHARD2).unlink()
    _assert_fails(model)


def test_added_stray_shard_fails_verify(model: Path, pristine: Path) -> None:
    shutil.copy(pristine / "other" / SHARD1, model / "extra.safetensors.sealed")
    with pytest.raises(IntegrityError):
        verify_sealed(model, DataKey(FIXED_DEK))


def test_shard_moved_from_another_model(model: Path, pristine: Path) -> None:
    shutil.copy(pristine / "other" / SHARD1, model / SHARD1)
    _assert_fails(model)


def test_shard_from_older_version(model: Path, pristine: Path) -> None:
    shutil.copy(pristine / "v2" / SHARD2, model / SHARD2)
    _assert_fails(model)


def test_whole_older_version_rejected_by_expected_version(pristine: Path) -> None:
    key = DataKey(FIXED_DEK)
    assert len(load_sealed(pristine / "v2", key, expected_model_version=2)) == 9
    with pytest.raises(IntegrityError):
        load_sealed(pristine / "v2", key, expected_model_version=3)
    with pytest.raises(IntegrityError):
        load_sealed(pristine / "other", key, expected_model_id="acme/tiny")


def test_manifest_from_another_model(model: Path, pristine: Path) -> None:
    shutil.copy(pristine / "other" / F.MANIFEST_NAME, model / F.MANIFEST_NAME)
    _assert_fails(model)


def test_pass_through_file_edited(model: Path) -> None:
    (model / "config.json").write_text('{"model_type": "evil"}\n')
    with pytest.raises(IntegrityError):
        verify_sealed(model, DataKey(FIXED_DEK))


@pytest.mark.parametrize("edit", ["name", "shape"])
def test_edit_tensor_name_or_shape(model: Path, edit: str) -> None:
    p = model / SHARD1
    b = p.read_bytes()
    if edit == "name":
        i = b.index(b'"embed.weight"')
        b = b[:i] + b'"embed.weighu"' + b[i + 14:]
    else:
        i = b.index(b'"shape":[64,48]')
        b = b[:i] + b'"shape":[48,64]' + b[i + 15:]
    p.write_bytes(b)
    _assert_fails(model)


def _resealed_header_entry(model: Path, shard: str, mutate: Callable[[bytes], bytes], oversize: int = 0) -> tuple[Any, ShardEntry]:
    """White box: an attacker who could also fix the manifest's header digest and size (they
    cannot: it is MACed) still fails on the header tag.  Returns (authenticated manifest, entry)."""
    am = authenticate_manifest(read_manifest(model), DataKey(FIXED_DEK))
    ent = next(s for s in am.manifest.shards if s.file == shard)
    p = model / shard
    b = mutate(p.read_bytes())
    p.write_bytes(b)
    L = F.PREAMBLE_LEN + struct.unpack_from("<I", b, 64)[0]
    digest = hashlib.sha256(b[:min(L, len(b))]).hexdigest()
    return am, ShardEntry(ent.name, ent.file, len(b), digest)


def test_header_tag_checked_even_if_digest_matches(model: Path) -> None:
    def mutate(b: bytes) -> bytes:
        i = b.index(b'"embed.weight"')
        return b[:i] + b'"embed.weighu"' + b[i + 14:]

    am, ent = _resealed_header_entry(model, SHARD1, mutate)
    with pytest.raises(IntegrityError):
        wopen._Shard(model / SHARD1, ent, am)


def test_chunks_bind_header_digest(model: Path) -> None:
    """Re-seal the header with the right key (white box) but different metadata: the header tag
    is then valid, yet every chunk fails because its AAD binds the header digest."""
    am = authenticate_manifest(read_manifest(model), DataKey(FIXED_DEK))
    ent = next(s for s in am.manifest.shards if s.file == SHARD1)
    p = model / SHARD1
    b = bytearray(p.read_bytes())
    pre = F.parse_preamble(bytes(b[:F.PREAMBLE_LEN]), len(b))
    _, hdr_aead, _ = F.derive_shard_keys(FIXED_DEK, pre.salt, "acme/tiny", ent.name)
    inner = bytes(b[F.PREAMBLE_LEN:F.PREAMBLE_LEN + pre.header_len - 16])
    meta, st_raw = F.split_inner(inner)
    st_raw2 = st_raw.replace(b'"format":"pt"', b'"format":"px"')
    assert st_raw2 != st_raw
    body = F.seal_header(hdr_aead, bytes(b[:F.PREAMBLE_LEN]), F.build_inner_header("acme/tiny", 3, ent.name, st_raw2), False)
    b[F.PREAMBLE_LEN:F.PREAMBLE_LEN + len(body)] = body
    p.write_bytes(bytes(b))
    digest = hashlib.sha256(bytes(b[:F.PREAMBLE_LEN + pre.header_len])).hexdigest()
    sh = wopen._Shard(p, ShardEntry(ent.name, ent.file, len(b), digest), am)  # header passes
    try:
        for i in range(sh.pre.n_chunks):
            s, e = sh.chunk_range(i)
            with pytest.raises(IntegrityError):
                sh.decrypt_chunk_into(i, memoryview(bytearray(e - s)))
    finally:
        sh.close()


@pytest.mark.parametrize("kind", ["oversized", "garbage", "zero_len"])
def test_oversized_or_malformed_header(model: Path, kind: str) -> None:
    p = model / SHARD1
    b = bytearray(p.read_bytes())
    if kind == "oversized":
        struct.pack_into("<I", b, 64, F.MAX_HEADER_LEN + 1)
    elif kind == "zero_len":
        struct.pack_into("<I", b, 64, 0)
    else:
        b[F.PREAMBLE_LEN:F.PREAMBLE_LEN + 200] = bytes(range(200))
    p.write_bytes(bytes(b))
    _assert_fails(model)


def test_unknown_version_and_flag(model: Path) -> None:
    p = model / SHARD1
    b = bytearray(p.read_bytes())
    struct.pack_into("<H", b, 8, 2)
    p.write_bytes(bytes(b))
    _assert_fails(model)
    struct.pack_into("<H", b, 8, 1)
    struct.pack_into("<H", b, 10, 0x0100)
    p.write_bytes(bytes(b))
    _assert_fails(model)


def test_concealed_model_tamper(tmp_path: Path, pristine: Path) -> None:
    d = tmp_path / "c"
    shutil.copytree(pristine / "sealed_c", d)
    L = _layout(d / SHARD1)
    _flip(d / SHARD1, L["hdr"] + 30)
    _assert_fails(d)


@pytest.mark.parametrize("alloc", ["mapped", "tensor"])
@pytest.mark.parametrize("where", ["late_chunk", "late_shard"])
def test_failure_zeroes_decrypted_buffers(model: Path, where: str, alloc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Corrupt a late chunk so earlier chunks were already decrypted: every buffer is zeroed."""
    shard = SHARD1 if where == "late_chunk" else SHARD2
    L = _layout(model / shard)
    _flip(model / shard, L["size"] - 1)
    seen: list[list[Any]] = []
    monkeypatch.setattr(wopen, "_WIPE_HOOK", lambda bufs: seen.append(list(bufs)))
    monkeypatch.setattr(wopen, "ALLOC_MODE", alloc)
    monkeypatch.setattr(wmem, "MAP_THRESHOLD", 1)
    decrypted: list[int] = []
    monkeypatch.setattr(wopen, "_DECRYPT_HOOK", lambda s, i: decrypted.append(i))
    with pytest.raises(IntegrityError):
        load_sealed(model, DataKey(FIXED_DEK), workers=1)
    assert len(seen) == 1
    bufs = seen[0]
    assert len(decrypted) > 1  # earlier chunks had been decrypted before the failure
    assert sum(int(np.asarray(b).size) for b in bufs) > 10_000
    for b in bufs:
        assert not np.asarray(b).any()


def test_failure_zeroes_shard_mode_buffer(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    L = _layout(model / SHARD1)
    _flip(model / SHARD1, L["size"] - 1)
    seen: list[list[Any]] = []
    monkeypatch.setattr(wopen, "_WIPE_HOOK", lambda bufs: seen.append(list(bufs)))
    monkeypatch.setattr(wopen, "ALLOC_MODE", "shard")
    monkeypatch.setattr(wmem, "MAP_THRESHOLD", 1)
    with pytest.raises(IntegrityError):
        load_sealed(model, DataKey(FIXED_DEK), workers=2)
    assert len(seen) == 1 and seen[0] and all(not np.asarray(b).any() for b in seen[0])


def test_no_tensor_escapes_from_open_sealed(model: Path) -> None:
    from weightseal.loader import open_sealed

    L = _layout(model / SHARD1)
    _flip(model / SHARD1, L["data"] + 5)
    with open_sealed(model, DataKey(FIXED_DEK)) as f:
        sh = f._model.shards[0]
        victim = next(n for n, t in sh.st.tensors.items() if t.begin == 0 and t.nbytes)
        with pytest.raises(IntegrityError):
            f.get_tensor(victim)
        ok = next(n for n, t in sh.st.tensors.items() if t.begin >= 4096 and t.nbytes)
        assert isinstance(f.get_tensor(ok), torch.Tensor)
