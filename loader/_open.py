"""Opening sealed checkpoints: manifest check, shard headers, parallel chunk decryption straight
into the destination tensors (CPU) or through a pinned staging ring (CUDA).

Failure is total: the first failed check anywhere stops the work, every buffer that may hold
plaintext (destination tensors, scratch, staging) is zeroed, and one ``IntegrityError`` is raised.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _format as F
from ._errors import IntegrityError, TensorNotFoundError
from ._keys import DataKey, LocalKey
from ._manifest import (
    AuthenticatedManifest,
    Manifest,
    ShardEntry,
    authenticate_manifest,
    parse_manifest,
    read_manifest,
)
from ._mem import alloc_host, populate
from ._pool import BatchPool, run_threads

__all__ = ["load_sealed", "open_sealed", "verify_sealed", "unseal_checkpoint", "inspect_sealed", "SealedCheckpoint"]

# Allocation strategy for CPU loads (measured with tests/benchmarks/bench_load.py, see FORMAT.md):
#   "mapped"  one private anonymous mapping per tensor of at least _mem.MAP_THRESHOLD bytes (torch's
#             allocator below that); each worker has the kernel populate the pages of the chunk it
#             is about to decrypt (MADV_POPULATE_WRITE) instead of faulting them in one by one
#   "tensor"  one buffer per tensor from torch's allocator; pages fault in on first write
#   "shard"   one mapped buffer per shard, populated chunk by chunk; tensors are views into it
ALLOC_MODES = ("mapped", "tensor", "shard")
ALLOC_MODE = os.environ.get("WEIGHTSEAL_ALLOC", "mapped")
# Test hooks: called with the list of buffers after they were zeroed on failure / with each
# decrypted chunk index.  None in production.
_WIPE_HOOK: Callable[[list[Any]], None] | None = None
_DECRYPT_HOOK: Callable[[str, int], None] | None = None

_STAGING_SLOTS = 4
_STAGING_BYTES = 64 << 20


def _tdtype(dt: str) -> torch.dtype:
    dtype = getattr(torch, F.DTYPES[dt][1], None)
    if not isinstance(dtype, torch.dtype):
        raise IntegrityError()
    return dtype


def _zero(buf: Any) -> None:
    if isinstance(buf, np.ndarray):
        buf.fill(0)
    elif isinstance(buf, torch.Tensor):
        buf.zero_()
    elif isinstance(buf, bytearray):
        buf[:] = bytes(len(buf))
    else:  # pragma: no cover
        raise TypeError(type(buf))


class _Shard:
    """One sealed shard, header authenticated.  Holds an fd and a read-only mmap of the file."""

    def __init__(self, path: Path, entry: ShardEntry, am: AuthenticatedManifest) -> None:
        self.entry = entry
        self.path = path
        self._mm: mmap.mmap | None = None
        self._mm_lock = threading.Lock()
        m = am.manifest
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise IntegrityError() from None
        self.fd = fd
        try:
            size = os.fstat(fd).st_size
            if size != entry.size:
                raise IntegrityError()
            pre_b = os.pread(fd, F.PREAMBLE_LEN, 0)
            pre = F.parse_preamble(pre_b, size)  # bounds: header_len <= cap and <= file size
            body = os.pread(fd, pre.header_len, F.PREAMBLE_LEN)
            if len(body) != pre.header_len:
                raise IntegrityError()
            digest = hashlib.sha256(pre_b + body).digest()
            if not hmac.compare_digest(digest.hex(), entry.header_sha256):
                raise IntegrityError()
            if pre.concealed != m.concealed:
                raise IntegrityError()
            chunk_aead, header_aead, ckey = F.derive_shard_keys(am.dek._material(), pre.salt, m.model_id, entry.name)
            inner = F.open_header(header_aead, pre_b, body, pre.concealed)  # tag checked before any allocation
            meta, st_raw = F.split_inner(inner)
            if meta != {"model_id": m.model_id, "model_version": m.model_version, "shard": entry.name}:
                raise IntegrityError()
            self.st = F.parse_st_header(st_raw, pre.data_len, IntegrityError)
            self.pre = pre
            self.aad = F.chunk_aad(digest)
            self._alg: algorithms.AES | None = algorithms.AES(ckey)
            nt = F.TAG_LEN * pre.n_chunks
            self.tags = os.pread(fd, nt, F.PREAMBLE_LEN + pre.header_len)
            pad = os.pread(fd, pre.data_offset - F.PREAMBLE_LEN - pre.header_len - nt, F.PREAMBLE_LEN + pre.header_len + nt)
            if len(self.tags) != nt or any(pad):
                raise IntegrityError()
            self.dtypes = {n: _tdtype(t.dtype) for n, t in self.st.tensors.items()}
        except BaseException:
            os.close(fd)
            raise

    @property
    def chunk_size(self) -> int:
        return self.pre.chunk_size

    def chunk_range(self, i: int) -> tuple[int, int]:
        b = i * self.pre.chunk_size
        return b, min(b + self.pre.chunk_size, self.pre.data_len)

    def chunks_for(self, begin: int, end: int) -> range:
        cs = self.pre.chunk_size
        if end <= begin:
            return range(0)
        return range(begin // cs, -(-end // cs))

    def mapping(self) -> mmap.mmap | None:
        """Read-only shared mapping of the whole file (created once, thread-safe).  Pages are
        faulted in by the workers as they read their chunks (the kernel maps 64 KiB of page cache
        per fault), in parallel; pre-populating the whole mapping up front (MAP_POPULATE) was
        measured slower, being serial.  Subset loads touch only their chunks."""
        with self._mm_lock:
            if self._mm is None and self.pre.data_len > 0:
                try:
                    self._mm = mmap.mmap(self.fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
                except (OSError, ValueError):
                    raise IntegrityError() from None
            return self._mm

    def decrypt_chunk_into(self, i: int, dst: memoryview) -> None:
        """Decrypt chunk i into dst (exactly the chunk's length), verifying its tag."""
        self.decrypt_chunk_scatter(i, [dst])

    def decrypt_chunk_scatter(self, i: int, parts: Sequence[memoryview],
                              prefault: Sequence[np.ndarray | None] | None = None) -> None:
        """Decrypt chunk i straight into consecutive destination pieces (GCM is a stream mode,
        so a chunk that straddles tensors is scattered without an intermediate copy); the
        pieces' lengths must add up to the chunk's.  ``prefault[k]``, where given, is piece k as
        an array in a mapping of its own: its pages are populated just before it is written.
        The tag is verified at the end: on failure the caller zeroes every piece."""
        b, e = self.chunk_range(i)
        if sum(len(p) for p in parts) != e - b:
            raise IntegrityError()
        tag = self.tags[i * F.TAG_LEN:(i + 1) * F.TAG_LEN]
        nonce = F.chunk_nonce(i, i == self.pre.n_chunks - 1)
        if _DECRYPT_HOOK is not None:
            _DECRYPT_HOOK(self.entry.name, i)
        try:
            if self._alg is None:
                raise IntegrityError()
            d = Cipher(self._alg, modes.GCM(nonce, tag)).decryptor()
            d.authenticate_additional_data(self.aad)
            if e > b:
                mm = self.mapping()
                assert mm is not None
                with memoryview(mm) as whole:
                    pos = self.pre.data_offset + b
                    for k, p in enumerate(parts):
                        if len(p):
                            if prefault is not None and (pf := prefault[k]) is not None:
                                populate(pf)
                            with whole[pos:pos + len(p)] as ct:
                                d.update_into(ct, p)
                            pos += len(p)
            d.finalize()
        except InvalidTag:
            raise IntegrityError() from None

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # pragma: no cover - a view still exported; GC closes it
                pass
            self._mm = None
        self._alg = None  # drop the chunk key
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------------------------------
# the opened model


class _Model:
    def __init__(self, path: Path, key: DataKey | LocalKey, *, only_file: str | None = None,
                 expected_model_id: str | None = None, expected_model_version: int | None = None) -> None:
        self.dir = path
        m = read_manifest(path)
        self.am = authenticate_manifest(m, key, expected_model_id=expected_model_id,
                                        expected_model_version=expected_model_version)
        self.shards: list[_Shard] = []
        try:
            for ent in m.shards:
                if only_file is not None and ent.file != only_file:
                    continue
                self.shards.append(_Shard(path / ent.file, ent, self.am))
            if only_file is not None and not self.shards:
                raise IntegrityError()
            self.where: dict[str, _Shard] = {}
            for sh in self.shards:
                for n in sh.st.tensors:
                    if n in self.where:
                        raise IntegrityError()
                    self.where[n] = sh
        except BaseException:
            self.close()
            raise

    @property
    def manifest(self) -> Manifest:
        return self.am.manifest

    def close(self) -> None:
        for sh in self.shards:
            sh.close()
        self.shards = []
        self.am.close()


# ---------------------------------------------------------------------------------------------
# the decryption engine


@dataclass(slots=True)
class _Target:
    name: str
    begin: int
    end: int
    buf: Any  # numpy uint8 array (cpu) / device uint8 tensor (cuda) holding the tensor bytes
    mapped: bool = False  # buf lies in a mapping of its own: populate its pages before writing


def _byte_tensor(arr: np.ndarray, dt: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if arr.size == 0:
        return torch.empty(shape, dtype=dt)
    return torch.from_numpy(arr).view(dt).reshape(shape)


def _alloc_cpu(nbytes: int) -> tuple[np.ndarray, bool]:
    """A fresh uint8 buffer and whether it is a mapping of its own (see ALLOC_MODE)."""
    if ALLOC_MODE == "tensor":
        return torch.empty(nbytes, dtype=torch.uint8).numpy(), False
    return alloc_host(nbytes)


def _plan(sh: _Shard, names: Iterable[str]) -> tuple[list[F.TensorInfo], list[int]]:
    infos = [sh.st.tensors[n] for n in names]
    full = len(infos) == len(sh.st.tensors)
    if full:
        return infos, list(range(sh.pre.n_chunks))
    chunks: set[int] = set()
    for t in infos:
        chunks.update(sh.chunks_for(t.begin, t.end))
    return infos, sorted(chunks)


def _load_cpu(model: _Model, wanted: dict[_Shard, list[str]], workers: int) -> dict[str, torch.Tensor]:
    owned: list[Any] = []  # every buffer allocated for the output
    unmapped: list[Any] = []  # those that may hold plaintext anywhere (torch-allocated)
    touched: list[np.ndarray] = []  # pieces of mapped buffers a worker may have written
    out: dict[str, torch.Tensor] = {}
    tasks: list[tuple[_Shard, int, list[_Target]]] = []
    copy_out: list[tuple[np.ndarray, _Shard, F.TensorInfo]] = []  # "shard" mode, misaligned tensors
    try:
        for sh, names in wanted.items():
            infos, chunks = _plan(sh, names)
            full = len(infos) == len(sh.st.tensors)
            if ALLOC_MODE == "shard" and full:
                big, big_mapped = _alloc_cpu(sh.pre.data_len)
                owned.append(big)
                if not big_mapped:
                    unmapped.append(big)
                bt = torch.from_numpy(big)
                for t in infos:
                    dt = sh.dtypes[t.name]
                    if t.nbytes == 0:  # empty tensors (a zero-length view cannot change dtype)
                        out[t.name] = torch.empty(t.shape, dtype=dt)
                    elif t.begin % dt.itemsize == 0:
                        out[t.name] = bt[t.begin:t.end].view(dt).reshape(t.shape)
                    else:
                        copy_out.append((big, sh, t))
                for i in chunks:
                    b, e = sh.chunk_range(i)
                    tasks.append((sh, i, [_Target("", b, e, big[b:e], big_mapped)]))
                continue
            targets: list[_Target] = []
            for t in infos:
                buf, mapped = _alloc_cpu(t.nbytes)
                owned.append(buf)
                if not mapped:
                    unmapped.append(buf)
                out[t.name] = _byte_tensor(buf, sh.dtypes[t.name], t.shape)
                if t.nbytes:
                    targets.append(_Target(t.name, t.begin, t.end, buf, mapped))
            targets.sort(key=lambda x: x.begin)
            ti = 0
            for i in chunks:  # ascending
                b, e = sh.chunk_range(i)
                while ti < len(targets) and targets[ti].end <= b:
                    ti += 1
                ov = []
                k = ti
                while k < len(targets) and targets[k].begin < e:
                    tg = targets[k]
                    lo, hi = max(b, tg.begin), min(e, tg.end)
                    ov.append(_Target(tg.name, lo, hi, tg.buf[lo - tg.begin:hi - tg.begin], tg.mapped))
                    k += 1
                tasks.append((sh, i, ov))
        _decrypt_tasks(tasks, workers, touched)
        for big, sh, t in copy_out:
            buf, _ = _alloc_cpu(t.nbytes)
            owned.append(buf)
            unmapped.append(buf)  # written in full below
            np.copyto(buf, big[t.begin:t.end])
            out[t.name] = _byte_tensor(buf, sh.dtypes[t.name], t.shape)
        return out
    except BaseException:
        out.clear()
        # A mapped buffer holds plaintext only where a worker wrote; its other pages were never
        # touched and read as zero.  Zeroing just the written pieces keeps a failed load of a
        # large model from allocating the whole model's memory merely to zero it.
        _wipe(unmapped + touched, report=owned)
        raise


def _wipe(bufs: list[Any], report: list[Any] | None = None) -> None:
    for b in bufs:
        _zero(b)
    if _WIPE_HOOK is not None:
        _WIPE_HOOK(bufs if report is None else report)


def _decrypt_tasks(tasks: list[tuple[_Shard, int, list[_Target]]], workers: int,
                   touched: list[np.ndarray]) -> None:
    """Each task: (shard, chunk index, targets overlapping the chunk in ascending order).  Bytes
    of the chunk that no target wants (subset loads) are decrypted into a per-thread scratch
    buffer, which is zeroed afterwards.  Every piece of a mapped buffer is appended to
    ``touched`` before anything is written to it."""
    max_chunk = max((sh.chunk_size for sh, _, _ in tasks), default=0)
    scratch_all: list[bytearray] = []
    slock = threading.Lock()

    def fn(state: dict[str, Any], task: tuple[_Shard, int, list[_Target]]) -> None:
        sh, i, ov = task
        b, e = sh.chunk_range(i)
        parts: list[memoryview] = []
        prefault: list[np.ndarray | None] = []
        pos = b
        for tg in ov:
            if tg.begin > pos:
                parts.append(_scratch(state, pos - b, tg.begin - b))
                prefault.append(None)
            parts.append(tg.buf.data.cast("B"))
            if tg.mapped:
                touched.append(tg.buf)  # list.append is atomic
                prefault.append(tg.buf)
            else:
                prefault.append(None)
            pos = tg.end
        if pos < e:
            parts.append(_scratch(state, pos - b, e - b))
            prefault.append(None)
        sh.decrypt_chunk_scatter(i, parts, prefault)

    def _scratch(state: dict[str, Any], lo: int, hi: int) -> memoryview:
        sc = state.get("scratch")
        if sc is None:
            sc = bytearray(max_chunk)
            state["scratch"] = sc
            with slock:
                scratch_all.append(sc)
        return memoryview(sc)[lo:hi]

    try:
        run_threads(tasks, workers, fn, dict, lambda s: None)
    finally:
        for sc in scratch_all:
            _zero(sc)


# ---------------------------------------------------------------------------------------------
# CUDA: pinned staging ring


class _TorchCudaCopier:
    """Async host->device copies on a dedicated stream; events guard staging-slot reuse."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device)  # type: ignore[no-untyped-call]

    def alloc_device(self, nbytes: int) -> torch.Tensor:
        return torch.empty(nbytes, dtype=torch.uint8, device=self.device)

    def alloc_staging(self, nbytes: int) -> torch.Tensor:
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        with torch.cuda.stream(self.stream):
            dst.copy_(src, non_blocking=True)

    def record(self) -> Any:
        ev = torch.cuda.Event()  # type: ignore[no-untyped-call]
        ev.record(self.stream)
        return ev

    def wait(self, ev: Any) -> None:
        if ev is not None:
            ev.synchronize()

    def synchronize(self) -> None:
        self.stream.synchronize()


def _load_ring(model: _Model, wanted: dict[_Shard, list[str]], workers: int, copier: Any,
               slots: int = _STAGING_SLOTS, slot_bytes: int = _STAGING_BYTES) -> dict[str, torch.Tensor]:
    """Decrypt into a small ring of staging buffers and copy each filled slot asynchronously
    into preallocated device tensors; decrypting slot k+1 overlaps the transfer of slot k.
    Host memory is bounded by slots * slot_bytes.  ``copier`` abstracts the device (tests use a
    fake one)."""
    max_chunk = max((sh.chunk_size for sh in wanted), default=F.DEFAULT_CHUNK_SIZE)
    slot_bytes = max(slot_bytes, max_chunk)
    ring: list[torch.Tensor] = []
    events: list[Any] = []
    device_bufs: list[torch.Tensor] = []
    out: dict[str, torch.Tensor] = {}
    pool = BatchPool(workers)
    try:
        for sh, names in wanted.items():
            for n in names:
                t = sh.st.tensors[n]
                buf = copier.alloc_device(t.nbytes)
                device_bufs.append(buf)
                out[n] = buf.view(sh.dtypes[n]).reshape(t.shape)
        k = 0
        for sh, names in wanted.items():
            infos, chunks = _plan(sh, names)
            per = max(1, slot_bytes // sh.chunk_size)
            targets = sorted(((t.begin, t.end, out[t.name]) for t in infos), key=lambda x: x[0])
            first = 0  # targets are disjoint and sorted, batches ascend: a cursor, not a scan per batch
            # group contiguous runs of needed chunks into slot-sized batches
            batches: list[list[int]] = []
            for i in chunks:
                if batches and batches[-1][-1] == i - 1 and len(batches[-1]) < per:
                    batches[-1].append(i)
                else:
                    batches.append([i])
            for batch in batches:
                s = k % slots
                if s >= len(ring):
                    ring.append(copier.alloc_staging(slot_bytes))
                    events.append(None)
                copier.wait(events[s])
                base = sh.chunk_range(batch[0])[0]
                slot = ring[s]
                smv = slot.numpy().data.cast("B")

                def fn(i: int, sh: _Shard = sh, base: int = base, smv: memoryview = smv) -> None:
                    b, e = sh.chunk_range(i)
                    sh.decrypt_chunk_into(i, smv[b - base:e - base])

                pool.run(batch, fn)
                end = sh.chunk_range(batch[-1])[1]
                while first < len(targets) and targets[first][1] <= base:
                    first += 1
                j = first
                while j < len(targets) and targets[j][0] < end:
                    tb, te, tensor = targets[j]
                    j += 1
                    lo, hi = max(tb, base), min(te, end)
                    if hi > lo:
                        dst = _dev_bytes(tensor)[lo - tb:hi - tb]
                        copier.copy(dst, slot[lo - base:hi - base])
                events[s] = copier.record()
                k += 1
        copier.synchronize()
        for slot in ring:
            slot.zero_()
        return out
    except BaseException:
        out.clear()
        try:
            copier.synchronize()
        finally:
            _wipe(list(device_bufs) + list(ring))
        raise
    finally:
        pool.close()


def _dev_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


# ---------------------------------------------------------------------------------------------
# public API


def _select(model: _Model, names: Iterable[str] | None) -> dict[_Shard, list[str]]:
    wanted: dict[_Shard, list[str]] = {sh: [] for sh in model.shards}
    if names is None:
        for sh in model.shards:
            wanted[sh] = list(sh.st.tensors)
    else:
        for n in dict.fromkeys(names):
            found = model.where.get(n)
            if found is None:
                raise TensorNotFoundError(f"no tensor named {n!r} in this checkpoint")
            sh = found
            wanted[sh].append(n)
    return {sh: ns for sh, ns in wanted.items() if ns}


def _load(model: _Model, names: Iterable[str] | None, device: str | torch.device, workers: int | None) -> dict[str, torch.Tensor]:
    dev = torch.device(device)
    wanted = _select(model, names)
    w = workers or os.cpu_count() or 1
    if dev.type == "cpu":
        return _load_cpu(model, wanted, w)
    if dev.type == "cuda":
        return _load_ring(model, wanted, w, _TorchCudaCopier(dev))
    raise ValueError(f"unsupported device {device!r}")


def load_sealed(model_dir: str | os.PathLike[str], key: DataKey | LocalKey, device: str | torch.device = "cpu",
                names: Iterable[str] | None = None, *, expected_model_id: str | None = None,
                expected_model_version: int | None = None, workers: int | None = None) -> dict[str, torch.Tensor]:
    """Load a sealed model directory into tensors on ``device`` ("cpu" or "cuda:N").

    Checks the manifest first (and ``expected_model_id``/``expected_model_version`` if given),
    then every shard header, then decrypts only the chunks the requested ``names`` need.  Any
    failure raises ``IntegrityError`` and returns nothing; buffers already decrypted are zeroed."""
    model = _Model(Path(model_dir), key, expected_model_id=expected_model_id,
                   expected_model_version=expected_model_version)
    try:
        return _load(model, names, device, workers)
    finally:
        model.close()


class SealedCheckpoint:
    """What ``open_sealed`` yields: ``keys()``, ``metadata()``, ``get_tensor(name)``."""

    def __init__(self, model: _Model, device: str | torch.device, single: bool) -> None:
        self._model = model
        self._device = device
        self._single = single

    def keys(self) -> list[str]:
        return sorted(self._model.where)

    def metadata(self) -> dict[str, str] | None:
        md: dict[str, str] = {}
        seen = False
        for sh in self._model.shards:
            if sh.st.metadata is not None:
                md.update(sh.st.metadata)
                seen = True
        return md if seen else None

    @property
    def manifest(self) -> Manifest:
        return self._model.manifest

    def get_tensor(self, name: str) -> torch.Tensor:
        if not self._model.shards:
            raise IntegrityError()
        return _load(self._model, [name], self._device, None)[name]

    def get_tensors(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        return _load(self._model, names, self._device, None)

    def get_slice(self, name: str) -> SealedSlice:
        """A lazy handle on one tensor, like safetensors' ``get_slice``: ``get_shape()``,
        ``get_dtype()`` and ``[index]``, which decrypts only the chunks holding the selected
        elements (tensor-parallel loaders take row or column blocks of each weight)."""
        if not self._model.shards:
            raise IntegrityError()
        sh = self._model.where.get(name)
        if sh is None:
            raise TensorNotFoundError(f"no tensor named {name!r} in this checkpoint")
        return SealedSlice(self._model, sh, sh.st.tensors[name], sh.dtypes[name], self._device)


class SealedSlice:
    """One tensor of an open sealed checkpoint, indexed without loading all of it.

    Indexing takes what plain tensors take for basic indexing (integers, slices with a positive
    step, ``...``) and returns a new contiguous tensor on the checkpoint's device, equal to
    ``get_tensor(name)[index]``.  Only the chunks covering the selected elements are decrypted
    and authenticated: a block of rows costs just its own bytes; a block of columns spans from
    its first to its last element.  When the selection is not one contiguous run of the tensor,
    the span is decrypted into a temporary host buffer that is zeroed once the selection is
    copied out; so is the host copy of a selection bound for a GPU."""

    def __init__(self, model: _Model, sh: _Shard, info: F.TensorInfo, dtype: torch.dtype,
                 device: str | torch.device) -> None:
        self._model = model
        self._sh = sh
        self._info = info
        self._dtype = dtype
        self._device = torch.device(device)

    def get_shape(self) -> list[int]:
        return list(self._info.shape)

    def get_dtype(self) -> str:
        """The safetensors dtype name ("BF16", "F8_E4M3", ...)."""
        return self._info.dtype

    def __getitem__(self, index: Any) -> torch.Tensor:
        if self._sh not in self._model.shards:  # the checkpoint was closed
            raise IntegrityError()
        # Let torch work out the selection on a meta tensor (no memory): its shape, strides and
        # offset, in elements, say exactly which part of the row-major tensor is wanted.
        view = torch.empty(self._info.shape, dtype=self._dtype, device="meta")[_basic_index(index)]
        shape, strides, first = tuple(view.shape), view.stride(), int(view.storage_offset())
        if view.numel() == 0:
            return torch.empty(shape, dtype=self._dtype, device=self._device)
        last = first + sum((int(n) - 1) * int(st) for n, st in zip(shape, strides, strict=True))
        isz = self._dtype.itemsize
        begin, end = self._info.begin + first * isz, self._info.begin + (last + 1) * isz
        buf = _decrypt_range(self._sh, begin, end, os.cpu_count() or 1)
        span = _byte_tensor(buf, self._dtype, ((last + 1 - first),))
        direct = view.is_contiguous() and view.numel() == last + 1 - first
        try:
            out = span.view(shape) if direct else span.as_strided(shape, strides).clone(memory_format=torch.contiguous_format)
            if self._device.type != "cpu":
                out = out.to(self._device)
                direct = False
        except BaseException:
            _zero(buf)
            raise
        if not direct:
            _zero(buf)  # the whole span held plaintext; only ``out`` leaves
        return out


def _basic_index(index: Any) -> tuple[Any, ...]:
    """The index as a tuple of ints, slices and Ellipsis; anything else (lists, arrays, tensors,
    None: advanced indexing or new axes, which copy or reshape rather than select) is refused."""
    items = index if isinstance(index, tuple) else (index,)
    out: list[Any] = []
    for it in items:
        if it is Ellipsis or isinstance(it, slice):
            out.append(it)
        elif isinstance(it, int | np.integer) and not isinstance(it, bool):
            out.append(operator.index(it))
        else:  # tensors and arrays (even of one element) would mean advanced indexing in torch
            raise TypeError(f"only integers, slices and ... can index a sealed tensor, not {type(it).__name__}")
    return tuple(out)


def _decrypt_range(sh: _Shard, begin: int, end: int, workers: int) -> np.ndarray:
    """Decrypt bytes [begin, end) of a shard's data region into a fresh buffer, touching only the
    chunks that overlap it (their other bytes go to a scratch buffer that is zeroed)."""
    buf, mapped = _alloc_cpu(end - begin)
    tasks = []
    for i in sh.chunks_for(begin, end):
        b, e = sh.chunk_range(i)
        lo, hi = max(b, begin), min(e, end)
        tasks.append((sh, i, [_Target("", lo, hi, buf[lo - begin:hi - begin], mapped)]))
    touched: list[np.ndarray] = []
    try:
        _decrypt_tasks(tasks, workers, touched)
    except BaseException:
        _wipe(touched if mapped else [buf], report=[buf])
        raise
    return buf


@contextmanager
def open_sealed(path: str | os.PathLike[str], key: DataKey | LocalKey, device: str | torch.device = "cpu", *,
                expected_model_id: str | None = None, expected_model_version: int | None = None) -> Iterator[SealedCheckpoint]:
    """Open a sealed model directory, or a single ``*.sealed`` shard inside one (its manifest,
    in the same directory, is always checked)."""
    p = Path(path)
    if p.is_dir():
        model = _Model(p, key, expected_model_id=expected_model_id, expected_model_version=expected_model_version)
        single = False
    else:
        model = _Model(p.parent, key, only_file=p.name, expected_model_id=expected_model_id,
                       expected_model_version=expected_model_version)
        single = True
    try:
        yield SealedCheckpoint(model, device, single)
    finally:
        model.close()


def verify_sealed(model_dir: str | os.PathLike[str], key: DataKey | LocalKey, *,
                  expected_model_id: str | None = None, expected_model_version: int | None = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Full integrity check: manifest, every shard header and chunk, the index, every
    pass-through file; no stray sealed files.  Returns a summary or raises IntegrityError."""
    p = Path(model_dir)
    t0 = time.perf_counter()
    model = _Model(p, key, expected_model_id=expected_model_id, expected_model_version=expected_model_version)
    try:
        m = model.manifest
        listed = {s.file for s in m.shards} | {f.name for f in m.files} | {F.MANIFEST_NAME}
        try:
            present = {e.name for e in p.iterdir()}
        except OSError:
            raise IntegrityError() from None
        if any(n.endswith(F.SEALED_SUFFIX) and n not in listed for n in present) or not listed <= present:
            raise IntegrityError()
        model.am.index_bytes()
        for fe in m.files:
            _check_file(p / fe.name, fe.name, fe.size, fe.mac, model.am.mac_key, None)
        tasks = [(sh, i) for sh in model.shards for i in range(sh.pre.n_chunks)]
        max_chunk = max(sh.chunk_size for sh in model.shards)

        def fn(sc: bytearray, t: tuple[_Shard, int]) -> None:
            sh, i = t
            b, e = sh.chunk_range(i)
            sh.decrypt_chunk_into(i, memoryview(sc)[:e - b])

        run_threads(tasks, workers or os.cpu_count() or 1, fn, lambda: bytearray(max_chunk), _zero)
        return {"model_id": m.model_id, "model_version": m.model_version, "shards": len(m.shards),
                "tensors": sum(len(sh.st.tensors) for sh in model.shards),
                "bytes": sum(sh.pre.data_len for sh in model.shards), "seconds": time.perf_counter() - t0}
    finally:
        model.close()


def _check_file(src: Path, name: str, size: int, mac: str, mac_key: bytes, dst: Path | None) -> None:
    h = hashlib.sha256()
    n = 0
    try:
        with open(src, "rb") as fi:
            fo = open(dst, "xb") if dst is not None else None
            try:
                while True:
                    b = fi.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                    if fo is not None:
                        fo.write(b)
            finally:
                if fo is not None:
                    fo.close()
    except OSError:
        raise IntegrityError() from None
    if n != size or not hmac.compare_digest(F.file_mac(mac_key, name, h), mac):
        raise IntegrityError()


def unseal_checkpoint(sealed_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], key: DataKey | LocalKey, *,
                      workers: int | None = None) -> Path:
    """Write the original plaintext checkpoint (byte-identical files) to ``out_dir``.
    Only verified chunks are ever written; on failure the partial output is removed."""
    import secrets
    import shutil
    import struct

    src, out = Path(sealed_dir), Path(out_dir)
    if out.exists():
        from ._errors import SealedFormatError

        raise SealedFormatError(f"{out} already exists; refusing to overwrite", reason="loader.args")
    model = _Model(src, key)
    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(6)}"
    tmp.mkdir(mode=0o700)
    try:
        m = model.manifest
        for sh in model.shards:
            raw = sh.st.raw
            fd = os.open(tmp / sh.entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                head = struct.pack("<Q", len(raw)) + raw
                from ._seal import _preallocate

                _preallocate(fd, len(head) + sh.pre.data_len)
                os.pwrite(fd, head, 0)
                base = len(head)

                def fn(sc: bytearray, i: int, sh: _Shard = sh, fd: int = fd, base: int = base) -> None:
                    b, e = sh.chunk_range(i)
                    mv = memoryview(sc)[:e - b]
                    sh.decrypt_chunk_into(i, mv)
                    done = 0
                    while done < len(mv):
                        done += os.pwrite(fd, mv[done:], base + b + done)

                cs = sh.chunk_size

                def scratch(cs: int = cs) -> bytearray:
                    return bytearray(cs)

                run_threads(list(range(sh.pre.n_chunks)), workers or os.cpu_count() or 1, fn, scratch, _zero)
            finally:
                os.close(fd)
        idx = model.am.index_bytes()
        if idx is not None and m.index is not None:
            (tmp / m.index["name"]).write_bytes(idx)
        for fe in m.files:
            _check_file(src / fe.name, fe.name, fe.size, fe.mac, model.am.mac_key, tmp / fe.name)
        for e in tmp.iterdir():
            os.chmod(e, 0o644)
        tmp.chmod(0o755)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        model.close()
    return out


def inspect_sealed(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What anyone can see without the key.  NOTHING here is authenticated."""
    p = Path(path)
    result: dict[str, Any] = {"authenticated": False}
    files: list[Path]
    if p.is_dir():
        m = read_manifest(p)
        result["manifest"] = m.public_dict()
        files = [p / s.file for s in m.shards]
    else:
        files = [p]
        try:
            result["manifest"] = parse_manifest((p.parent / F.MANIFEST_NAME).read_bytes()).public_dict()
        except (OSError, IntegrityError):
            result["manifest"] = None
    shards = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                pre_b = fh.read(F.PREAMBLE_LEN)
                pre = F.parse_preamble(pre_b, size)
                info: dict[str, Any] = {"file": f.name, "size": size, "format_version": F.FORMAT_VERSION,
                                        "concealed": pre.concealed, "chunk_size": pre.chunk_size,
                                        "chunks": pre.n_chunks, "data_bytes": pre.data_len}
                if not pre.concealed:
                    body = fh.read(pre.header_len)
                    meta, st_raw = F.split_inner(body[:-F.TAG_LEN])
                    st = F.parse_st_header(st_raw, pre.data_len, IntegrityError)
                    info.update({"model_id": meta["model_id"], "model_version": meta["model_version"],
                                 "shard": meta["shard"], "metadata": st.metadata,
                                 "tensors": {n: {"dtype": t.dtype, "shape": list(t.shape)} for n, t in st.tensors.items()}})
        except OSError:
            raise IntegrityError() from None
        shards.append(info)
    result["shards"] = shards
    return result
