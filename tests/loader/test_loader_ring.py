"""The CUDA staging ring, exercised on CPU with a fake device copier; real CUDA tests are
marked ``gpu`` (auto-skipped without a device)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import weightseal.loader._open as wopen
from conftest import FIXED_DEK, make_checkpoint, same
from hypothesis import given, settings
from hypothesis import strategies as st
from test_loader_roundtrip import DTYPES, _rand
from weightseal.loader import DataKey, IntegrityError, load_sealed, seal_checkpoint


class FakeCopier:
    """Stands in for the CUDA stream: 'device' tensors are CPU tensors, copies are deferred
    until the slot's event is waited on (like an async copy), so reusing a slot before waiting
    would corrupt the output and fail the comparison."""

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.events: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.staging: list[torch.Tensor] = []
        self.waits = 0
        self.copies = 0

    def alloc_device(self, nbytes: int) -> torch.Tensor:
        return torch.full((nbytes,), 0xAB, dtype=torch.uint8)

    def alloc_staging(self, nbytes: int) -> torch.Tensor:
        t = torch.empty(nbytes, dtype=torch.uint8)
        self.staging.append(t)
        return t

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.pending.append((dst, src))  # async: src must stay untouched until the event
        self.copies += 1

    def record(self) -> Any:
        ev, self.pending = self.pending, []
        return ev

    def wait(self, ev: Any) -> None:
        if ev is not None:
            self.waits += 1
            for dst, src in ev:
                dst.copy_(src)
            ev.clear()

    def synchronize(self) -> None:
        for dst, src in self.pending:
            dst.copy_(src)
        self.pending = []


def _run(sealed: Path, names: Any = None, **kw: Any) -> tuple[dict[str, torch.Tensor], FakeCopier]:
    model = wopen._Model(sealed, DataKey(FIXED_DEK))
    fc = FakeCopier()
    try:
        wanted = wopen._select(model, names)
        return wopen._load_ring(model, wanted, 2, _Deferred(fc), **kw), fc
    finally:
        model.close()


class _Deferred:
    """Flushes each slot's copies only when that slot is waited on or at synchronize()."""

    def __init__(self, fc: FakeCopier) -> None:
        self.fc = fc
        self.open: list[Any] = []

    def __getattr__(self, n: str) -> Any:
        return getattr(self.fc, n)

    def synchronize(self) -> None:
        for ev in self.open:
            self.fc.wait(ev)
        self.open = []
        self.fc.synchronize()

    def record(self) -> Any:
        ev = self.fc.record()
        self.open.append(ev)
        return ev


def test_ring_roundtrip_small_slots(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, tensors = sealed_model
    got, fc = _run(out, slots=2, slot_bytes=4096)  # one chunk per slot: many reuses
    assert set(got) == set(tensors)
    for n, t in tensors.items():
        assert same(got[n], t), n
    assert len(fc.staging) == 2  # host memory bounded by the ring
    assert fc.waits >= 2
    assert all(not s.any() for s in fc.staging)  # staging zeroed at the end


def test_ring_subset(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, tensors = sealed_model
    got, _ = _run(out, names=["ids", "embed.weight"], slots=3, slot_bytes=8192)
    assert sorted(got) == ["embed.weight", "ids"]
    assert same(got["ids"], tensors["ids"]) and same(got["embed.weight"], tensors["embed.weight"])


def test_ring_failure_zeroes_device_and_staging(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = sealed_model
    p = out / "model-00002-of-00002.safetensors.sealed"
    b = bytearray(p.read_bytes())
    b[-1] ^= 1
    p.write_bytes(bytes(b))
    seen: list[list[Any]] = []
    monkeypatch.setattr(wopen, "_WIPE_HOOK", lambda bufs: seen.append(list(bufs)))
    with pytest.raises(IntegrityError):
        _run(out, slots=2, slot_bytes=4096)
    assert len(seen) == 1 and len(seen[0]) >= 9
    assert all(not np.asarray(t).any() for t in seen[0])


@pytest.mark.gpu
def test_cuda_load_matches_cpu(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, tensors = sealed_model
    got = load_sealed(out, DataKey(FIXED_DEK), device="cuda:0")
    torch.cuda.synchronize()
    for n, t in tensors.items():
        assert got[n].device.type == "cuda"
        assert same(got[n].cpu(), t), n


@pytest.mark.gpu
def test_cuda_load_tamper(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    _, out, _ = sealed_model
    p = out / "model-00001-of-00002.safetensors.sealed"
    b = bytearray(p.read_bytes())
    b[-1] ^= 1
    p.write_bytes(bytes(b))
    with pytest.raises(IntegrityError):
        load_sealed(out, DataKey(FIXED_DEK), device="cuda:0")


def test_ring_decrypts_on_persistent_threads(sealed_model: tuple[Path, Path, dict[str, torch.Tensor]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """One pool for the whole load, not new threads per slot-sized batch."""
    import threading

    _, out, tensors = sealed_model
    seen: set[threading.Thread] = set()
    batches = 0
    real = wopen._Shard.decrypt_chunk_into

    def spy(self: Any, i: int, dst: memoryview) -> None:
        seen.add(threading.current_thread())
        real(self, i, dst)

    monkeypatch.setattr(wopen._Shard, "decrypt_chunk_into", spy)
    real_record = FakeCopier.record

    def count(self: FakeCopier) -> Any:
        nonlocal batches
        batches += 1
        return real_record(self)

    monkeypatch.setattr(FakeCopier, "record", count)
    got, _ = _run(out, slots=2, slot_bytes=8192)  # two chunks per batch, so both workers run
    assert all(same(got[n], t) for n, t in tensors.items())
    assert batches >= 4 and 1 <= len(seen) <= 2 and threading.main_thread() not in seen


def test_batch_pool_reraises_only_after_every_task_stopped() -> None:
    import threading
    import time

    from weightseal.loader._pool import BatchPool

    started: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def fn(t: int) -> None:
        with lock:
            started.append(t)
        if t == 0:
            time.sleep(0.02)  # let the others start
            raise IntegrityError()
        time.sleep(0.1)
        with lock:
            finished.append(t)

    with BatchPool(3) as pool:
        with pytest.raises(IntegrityError):
            pool.run([0, 1, 2, 3, 4, 5], fn)
        # every task that had started had finished before the error surfaced (nothing still
        # writing), and tasks not yet started were cancelled
        with lock:
            assert sorted(started) == [0] + sorted(finished) and len(finished) >= 1
            assert len(started) < 6
        started.clear()
        finished.clear()
        pool.run([6, 7], fn)  # the pool is still usable
        assert sorted(finished) == [6, 7]
    with BatchPool(1) as single:  # one worker: runs inline, in order
        order: list[int] = []
        single.run([8, 9, 10], order.append)
        assert order == [8, 9, 10]


# random checkpoint layouts and ring shapes (also used by the real-CUDA property test)
RING_LAYOUTS: dict[str, Any] = {
    "specs": st.lists(st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 60), min_size=0, max_size=3)),
                      min_size=1, max_size=10),
    "shards": st.integers(1, 3),
    "chunk_shift": st.integers(12, 14),
    "slots": st.integers(1, 3),
    "per_slot": st.integers(1, 3),
    "seed": st.integers(0, 2**16),
}


@settings(max_examples=40, deadline=None)
@given(subset=st.booleans(), **RING_LAYOUTS)
def test_ring_roundtrip_property(specs: list[tuple[torch.dtype, list[int]]], shards: int, chunk_shift: int,
                                 slots: int, per_slot: int, subset: bool, seed: int) -> None:
    """Random layouts through the ring: every byte of every wanted tensor arrives, copies only
    where a tensor overlaps a slot, one copy per (tensor, slot fill) overlap."""
    tensors = {f"t{i}": _rand(dt, tuple(shape), seed + i) for i, (dt, shape) in enumerate(specs)}
    names = sorted(tensors)[::2] if subset else None
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        src = make_checkpoint(root, tensors, shards=min(shards, len(tensors)), extra=False)
        out = root / "sealed"
        seal_checkpoint(src, out, model_id="prop/ring", key=DataKey(FIXED_DEK), chunk_size=1 << chunk_shift)
        got, fc = _run(out, names=names, slots=slots, slot_bytes=per_slot << chunk_shift)
        want = names if names is not None else sorted(tensors)
        assert sorted(got) == sorted(want)
        for n in want:
            assert same(got[n], tensors[n]), n
        assert len(fc.staging) <= slots and all(not s.any() for s in fc.staging)
        # expected copies: for each tensor, the number of slot fills its byte range overlaps
        model = wopen._Model(out, DataKey(FIXED_DEK))
        try:
            expect = 0
            for sh, ns in wopen._select(model, names).items():
                cs = sh.chunk_size
                infos, chunks = wopen._plan(sh, ns)
                batches: list[tuple[int, int]] = []
                for c in chunks:
                    if batches and batches[-1][1] == c and (batches[-1][1] - batches[-1][0]) < per_slot:
                        batches[-1] = (batches[-1][0], c + 1)
                    else:
                        batches.append((c, c + 1))
                for t in infos:
                    expect += sum(1 for b0, b1 in batches if min(t.end, b1 * cs) > max(t.begin, b0 * cs))
        finally:
            model.close()
        assert fc.copies == expect
