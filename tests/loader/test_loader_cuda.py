"""The CUDA loading path on a real device (marked ``gpu``; skipped without one).

test_loader_ring.py proves the ring's logic with a fake copier on CPU; these prove the same
properties with real pinned buffers, a real side stream and real asynchronous copies: a slot
reused before its copy finished would corrupt the output, so tiny rings with many reuses are the
interesting case.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import weightseal.loader._open as wopen
from conftest import FIXED_DEK, make_checkpoint, same
from hypothesis import given, settings
from hypothesis import strategies as st
from test_loader_ring import RING_LAYOUTS
from test_loader_roundtrip import _rand
from weightseal.loader import DataKey, IntegrityError, load_sealed, open_sealed, seal_checkpoint

pytestmark = pytest.mark.gpu

DEV = "cuda:0"


class _CountingCopier(wopen._TorchCudaCopier):
    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        self.staging: list[torch.Tensor] = []
        self.device_bufs: list[torch.Tensor] = []
        self.copies = 0

    def alloc_staging(self, nbytes: int) -> torch.Tensor:
        t = super().alloc_staging(nbytes)
        assert t.is_pinned()
        self.staging.append(t)
        return t

    def alloc_device(self, nbytes: int) -> torch.Tensor:
        t = super().alloc_device(nbytes)
        self.device_bufs.append(t)
        return t

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.copies += 1
        super().copy(dst, src)


def _ring(sealed: Path, names: Any = None, **kw: Any) -> tuple[dict[str, torch.Tensor], _CountingCopier]:
    model = wopen._Model(sealed, DataKey(FIXED_DEK))
    cp = _CountingCopier(torch.device(DEV))
    try:
        return wopen._load_ring(model, wopen._select(model, names), 4, cp, **kw), cp
    finally:
        model.close()


@pytest.fixture
def big_model(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Odd-sized tensors so tensor boundaries fall inside chunks and slots; ~5 MiB in 3 shards,
    16 KiB chunks."""
    g = torch.Generator().manual_seed(7)
    tensors = {
        "a.odd": torch.randn(1001, generator=g),
        "b.bf16": torch.randn(700, 1030, generator=g).to(torch.bfloat16),
        "c.fp8": torch.randn(333, 77, generator=g).to(torch.float8_e4m3fn),
        "d.mask": torch.rand(4099, generator=g) > 0.5,
        "e.f32": torch.randn(512, 1023, generator=g),
        "f.scalar": torch.tensor(-2.25, dtype=torch.float64),
        "g.empty": torch.zeros(3, 0, dtype=torch.float16),
        "h.i64": torch.arange(77777, dtype=torch.int64),
        "i.fp8b": torch.randn(1000, 3, generator=g).to(torch.float8_e5m2),
    }
    src = make_checkpoint(tmp_path, tensors, shards=3)
    out = tmp_path / "sealed"
    seal_checkpoint(src, out, model_id="acme/cuda", model_version=1, key=DataKey(FIXED_DEK),
                    key_ref={"source": "test"}, chunk_size=16 << 10)
    return out, tensors


def test_cuda_every_dtype_through_a_tiny_ring(big_model: tuple[Path, dict[str, torch.Tensor]]) -> None:
    out, tensors = big_model
    got, cp = _ring(out, slots=2, slot_bytes=32 << 10)  # two chunks per slot, ~170 slot reuses
    torch.cuda.synchronize()
    assert sorted(got) == sorted(tensors)
    for n, t in tensors.items():
        assert got[n].device == torch.device(DEV), n
        assert same(got[n].cpu(), t), n
    # host memory bounded by the ring: two pinned slots whatever the model size, wiped at the end
    assert [s.numel() for s in cp.staging] == [32 << 10, 32 << 10]
    assert all(int(s.count_nonzero()) == 0 for s in cp.staging)
    assert cp.copies >= sum(t.nbytes for t in tensors.values()) // (32 << 10)  # >= one per slot fill


def test_cuda_load_sealed_default_ring(big_model: tuple[Path, dict[str, torch.Tensor]]) -> None:
    out, tensors = big_model
    got = load_sealed(out, DataKey(FIXED_DEK), device=DEV)
    for n, t in tensors.items():
        assert got[n].device.type == "cuda" and same(got[n].cpu(), t), n


def test_cuda_subset_reads_only_its_tensors(big_model: tuple[Path, dict[str, torch.Tensor]]) -> None:
    out, tensors = big_model
    got, cp = _ring(out, names=["e.f32", "c.fp8"], slots=3, slot_bytes=16 << 10)
    assert sorted(got) == ["c.fp8", "e.f32"]
    assert len(cp.device_bufs) == 2
    assert sum(b.numel() for b in cp.device_bufs) == tensors["e.f32"].nbytes + tensors["c.fp8"].nbytes
    for n in got:
        assert same(got[n].cpu(), tensors[n]), n


def test_cuda_open_sealed_get_tensor(big_model: tuple[Path, dict[str, torch.Tensor]]) -> None:
    out, tensors = big_model
    with open_sealed(out, DataKey(FIXED_DEK), device=DEV) as f:
        assert sorted(f.keys()) == sorted(tensors)
        for n in ("h.i64", "f.scalar", "g.empty", "d.mask"):
            t = f.get_tensor(n)
            assert t.device == torch.device(DEV) and same(t.cpu(), tensors[n]), n


def test_cuda_tamper_zeroes_device_and_pinned_buffers(big_model: tuple[Path, dict[str, torch.Tensor]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out, tensors = big_model
    last = sorted(out.glob("*.sealed"))[-1]
    b = bytearray(last.read_bytes())
    b[-100] ^= 0x10  # a late chunk: earlier tensors are already on the device when it fails
    last.write_bytes(bytes(b))
    seen: list[list[Any]] = []
    monkeypatch.setattr(wopen, "_WIPE_HOOK", lambda bufs: seen.append(list(bufs)))
    cps: list[_CountingCopier] = []

    def copier(dev: torch.device) -> _CountingCopier:
        cps.append(_CountingCopier(dev))
        return cps[-1]

    monkeypatch.setattr(wopen, "_TorchCudaCopier", copier)
    with pytest.raises(IntegrityError) as ei:
        load_sealed(out, DataKey(FIXED_DEK), device=DEV)
    assert str(ei.value) == str(IntegrityError())
    torch.cuda.synchronize()
    assert len(seen) == 1 and len(cps) == 1
    wiped = seen[0]
    dev_wiped = [t for t in wiped if t.device.type == "cuda"]
    host_wiped = [t for t in wiped if t.device.type == "cpu"]
    assert len(dev_wiped) == len(tensors) == len(cps[0].device_bufs)
    assert len(host_wiped) == len(cps[0].staging) >= 1
    assert all(t.is_pinned() for t in host_wiped)
    # plaintext had reached the device before the failure; none of it is left
    assert cps[0].copies > 0
    assert all(int(t.count_nonzero()) == 0 for t in wiped)


@settings(max_examples=30, deadline=None)
@given(conceal=st.booleans(), **RING_LAYOUTS)
def test_cuda_roundtrip_property(specs: list[tuple[torch.dtype, list[int]]], shards: int, chunk_shift: int,
                                 slots: int, per_slot: int, conceal: bool, seed: int) -> None:
    tensors = {f"t{i}": _rand(dt, tuple(shape), seed + i) for i, (dt, shape) in enumerate(specs)}
    shards = min(shards, len(tensors))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        src = make_checkpoint(root, tensors, shards=shards, extra=False)
        out = root / "sealed"
        seal_checkpoint(src, out, model_id="prop/cuda", key=DataKey(FIXED_DEK), conceal_header=conceal,
                        chunk_size=1 << chunk_shift)
        got, cp = _ring(out, slots=slots, slot_bytes=per_slot << chunk_shift)
        torch.cuda.synchronize()
        assert sorted(got) == sorted(tensors)
        for n, t in tensors.items():
            assert got[n].device == torch.device(DEV) and same(got[n].cpu(), t), n
        assert len(cp.staging) <= slots
        assert all(int(s.count_nonzero()) == 0 for s in cp.staging)
