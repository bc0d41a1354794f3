"""Host memory for CPU loads (loader/_mem.py): separate mappings for large tensors, populated by
the kernel chunk by chunk, kept out of core dumps, released with the tensor, and a fallback that
gives the same results when the kernel refuses."""

from __future__ import annotations

import ctypes
import errno
import gc
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import weightseal.loader._mem as wmem
import weightseal.loader._open as wopen
from conftest import FIXED_DEK, make_checkpoint, same
from weightseal.loader import DataKey, load_sealed, seal_checkpoint

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux memory-mapping fast path")

PAGE = 4096


def _smaps_entry(addr: int) -> dict[str, str] | None:
    """The /proc/self/smaps block of the mapping containing addr (fields as strings)."""
    with open("/proc/self/smaps") as f:
        cur: dict[str, str] | None = None
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                if cur is not None:
                    return cur
                cur = {} if lo <= addr < hi else None
            elif cur is not None:
                k, _, v = line.partition(":")
                cur[k] = v.strip()
        return cur


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def _resident_pages(addr: int, n: int) -> int:
    """Resident pages in [addr, addr + n) (mincore; the kernel merges adjacent anonymous
    mappings with equal flags into one VMA, so per-VMA smaps counters would mix buffers)."""
    lo = addr - addr % PAGE
    pages = -(-(addr + n - lo) // PAGE)
    vec = (ctypes.c_ubyte * pages)()
    assert _libc.mincore(lo, addr + n - lo, vec) == 0, ctypes.get_errno()
    return sum(b & 1 for b in vec)


@pytest.fixture(autouse=True)
def _fast_path() -> None:
    if not wmem.fast_path_available():
        pytest.fail("the MADV_POPULATE_WRITE fast path is off on this Linux machine (kernel < 5.14?)")


def test_large_buffers_are_separate_unpopulated_dontdump_mappings() -> None:
    n = 3 * (1 << 20) + 123
    arr, mapped = wmem.alloc_host(n)
    assert mapped and arr.nbytes == n and arr.dtype == np.uint8 and arr.flags.writeable
    addr = arr.ctypes.data
    assert addr % PAGE == 0
    e = _smaps_entry(addr)
    assert e is not None
    assert "dd" in e["VmFlags"].split()  # MADV_DONTDUMP: never in a core dump
    assert int(e["Size"].split()[0]) >= -(-n // PAGE) * 4
    assert _resident_pages(addr, n) == 0  # nothing allocated until populated


def test_populate_allocates_exactly_the_pages_under_the_slice() -> None:
    arr, mapped = wmem.alloc_host(4 << 20)
    assert mapped
    lo, hi = 5000, 5000 + (1 << 20)  # not page aligned on either side
    wmem.populate(arr[lo:hi])
    pages = (hi - 1) // PAGE - lo // PAGE + 1
    assert _resident_pages(arr.ctypes.data, arr.nbytes) == pages
    assert not arr[lo // PAGE * PAGE:(hi // PAGE + 1) * PAGE].any()  # fresh pages read as zero


def test_small_buffers_come_from_torch() -> None:
    arr, mapped = wmem.alloc_host(wmem.MAP_THRESHOLD - 1)
    assert not mapped and arr.nbytes == wmem.MAP_THRESHOLD - 1
    e = _smaps_entry(arr.ctypes.data)
    assert e is None or "dd" not in e["VmFlags"].split()


def test_mapping_is_released_with_the_last_tensor() -> None:
    arr, _ = wmem.alloc_host(2 << 20)
    addr = arr.ctypes.data
    t = torch.from_numpy(arr).view(torch.bfloat16)
    del arr
    gc.collect()
    assert _smaps_entry(addr) is not None  # the tensor keeps it alive
    t.fill_(1.5)
    assert float(t[12345]) == 1.5
    del t
    gc.collect()
    assert _smaps_entry(addr) is None


def _big_model(root: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    tensors = {
        "a": torch.randn(700, 1001, generator=g),  # 2.8 MB, straddles chunks at odd offsets
        "b": torch.randn(3, generator=g).to(torch.bfloat16),  # small: torch's allocator
        "c": torch.randn(1 << 19, generator=g).to(torch.float16),  # exactly 1 MiB
    }
    src = make_checkpoint(root, tensors, shards=2)
    out = root / "sealed"
    seal_checkpoint(src, out, model_id="mem/model", key=DataKey(FIXED_DEK), chunk_size=1 << 20)
    return out, tensors


def test_loaded_tensors_live_in_populated_dontdump_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, tensors = _big_model(tmp_path)
    real = wmem._madvise
    populated: list[tuple[int, int]] = []

    def spy(addr: int, n: int, advice: int) -> int:
        if advice == wmem.MADV_POPULATE_WRITE:
            populated.append((addr, n))
        return int(real(addr, n, advice))

    monkeypatch.setattr(wmem, "_madvise", spy)
    got = load_sealed(out, DataKey(FIXED_DEK), workers=2)
    # each chunk's piece of "a" and "c" was populated before being written: the populated
    # ranges cover both tensors exactly (page-rounded), nothing else
    want = set()
    for n in ("a", "c"):
        p, nb = got[n].data_ptr(), got[n].numel() * got[n].element_size()
        want |= set(range(p // PAGE, -(-(p + nb) // PAGE)))
    have = set()
    for addr, n in populated:
        have |= set(range(addr // PAGE, -(-(addr + n) // PAGE)))
    assert have == want and len(populated) >= 4  # "a" spans 3 chunks, "c" 2
    assert set(got) == set(tensors)
    for n, t in tensors.items():
        assert same(got[n], t), n
    for n in ("a", "c"):
        e = _smaps_entry(got[n].data_ptr())
        assert e is not None and "dd" in e["VmFlags"].split(), n
        nbytes = got[n].numel() * got[n].element_size()
        assert _resident_pages(got[n].data_ptr(), nbytes) == -(-nbytes // PAGE), n
    e = _smaps_entry(got["b"].data_ptr())
    assert e is None or "dd" not in e["VmFlags"].split()


@pytest.mark.parametrize("alloc", ["mapped", "tensor", "shard"])
def test_every_allocation_mode_gives_the_same_tensors(tmp_path: Path, alloc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    out, tensors = _big_model(tmp_path)
    monkeypatch.setattr(wopen, "ALLOC_MODE", alloc)
    got = load_sealed(out, DataKey(FIXED_DEK))
    assert all(same(got[n], t) for n, t in tensors.items())
    sub = load_sealed(out, DataKey(FIXED_DEK), names=["a"])
    assert list(sub) == ["a"] and same(sub["a"], tensors["a"])


def test_kernel_refusing_the_advice_switches_to_faulting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An old kernel (EINVAL) or a seccomp filter (EPERM): the first refused populate turns the
    fast path off, the load still returns the right tensors, later buffers come from torch."""
    out, tensors = _big_model(tmp_path)
    real = wmem._madvise
    calls: list[int] = []

    def refuse(addr: int, n: int, advice: int) -> int:
        calls.append(advice)
        if advice == wmem.MADV_POPULATE_WRITE:
            ctypes.set_errno(errno.EINVAL)
            return -1
        return int(real(addr, n, advice))

    monkeypatch.setattr(wmem, "_madvise", refuse)
    monkeypatch.setattr(wmem, "_enabled", True)
    got = load_sealed(out, DataKey(FIXED_DEK), workers=1)
    assert all(same(got[n], t) for n, t in tensors.items())
    assert calls.count(wmem.MADV_POPULATE_WRITE) == 1 and not wmem.fast_path_available()
    arr, mapped = wmem.alloc_host(8 << 20)
    assert not mapped and arr.nbytes == 8 << 20


def test_transient_populate_failure_keeps_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    arr, mapped = wmem.alloc_host(2 << 20)
    assert mapped

    def nomem(addr: int, n: int, advice: int) -> int:
        ctypes.set_errno(errno.ENOMEM)
        return -1

    monkeypatch.setattr(wmem, "_madvise", nomem)
    wmem.populate(arr[:PAGE])
    assert wmem.fast_path_available()
    arr[:PAGE] = 7  # the page simply faults in on write
    assert int(arr[:PAGE].sum()) == 7 * PAGE


def test_failed_load_zeroes_what_it_wrote_without_allocating_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure late in shard 1 (one worker, chunks in order): the written pieces of "a" are
    zeroed; "c" (shard 2) was never written, and wiping it must not allocate its pages."""
    from weightseal.loader import IntegrityError

    out, tensors = _big_model(tmp_path)
    shard1 = sorted(out.glob("*.sealed"))[0]
    raw = bytearray(shard1.read_bytes())
    raw[-1] ^= 0x01  # last chunk of shard 1
    shard1.write_bytes(bytes(raw))
    seen: dict[str, tuple[int, int, bool]] = {}

    def hook(bufs: list[object]) -> None:
        for b in bufs:
            a = np.asarray(b)
            if a.nbytes == tensors["c"].numel() * 2:
                name = "c"
            elif a.nbytes == tensors["a"].numel() * 4:
                name = "a"
            else:
                continue
            pages = -(-a.nbytes // PAGE)
            resident = _resident_pages(a.ctypes.data, a.nbytes)  # before reading it
            seen[name] = (resident, pages, bool(a.any()))

    monkeypatch.setattr(wopen, "_WIPE_HOOK", hook)
    with pytest.raises(IntegrityError):
        load_sealed(out, DataKey(FIXED_DEK), workers=1)
    assert set(seen) == {"a", "c"}
    res_a, pages_a, nonzero_a = seen["a"]
    res_c, _, nonzero_c = seen["c"]
    assert res_a == pages_a and not nonzero_a  # written in full, then zeroed
    assert res_c == 0 and not nonzero_c  # never written, never allocated
