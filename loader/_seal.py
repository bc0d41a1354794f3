"""Sealing: plaintext safetensors checkpoint directory -> sealed model directory.

Streams every shard chunk by chunk (bounded memory: two chunk buffers per worker thread), encrypts
on all cores (the AEAD calls release the GIL) and writes into a hidden temporary directory that is
renamed into place only when everything, manifest included, has been written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import mmap
import os
import secrets
import shutil
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _format as F
from ._errors import SealedFormatError
from ._keys import DataKey, LocalKey
from ._manifest import FileEntry, ShardEntry
from ._pool import run_threads

__all__ = ["seal_checkpoint", "SealReport"]

log = logging.getLogger(__name__)
_MAX_INDEX = 64 << 20


@dataclass(slots=True)
class SealReport:
    out_dir: Path
    model_id: str
    model_version: int
    key_ref: dict[str, Any]
    shards: list[ShardEntry]
    files: list[str]
    tensors: int
    plaintext_bytes: int
    seconds: float
    skipped: list[str] = field(default_factory=list)

    @property
    def gb_per_s(self) -> float:
        return self.plaintext_bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0


def _args_error(msg: str) -> SealedFormatError:
    return SealedFormatError(msg, reason="loader.args")


def _pread_full(fd: int, buf: memoryview, off: int) -> None:
    got = 0
    n = len(buf)
    while got < n:
        k = os.preadv(fd, [buf[got:]], off + got)
        if k <= 0:
            raise SealedFormatError("source file changed while sealing", reason="loader.source.io")
        got += k


def _pwrite_full(fd: int, buf: memoryview, off: int) -> None:
    done = 0
    while done < len(buf):
        done += os.pwrite(fd, buf[done:], off + done)


def _read_source_header(fd: int, size: int, name: str) -> F.StHeader:
    if size < 8:
        raise SealedFormatError(f"{name}: not a safetensors file", reason="loader.source.header")
    (n,) = struct.unpack("<Q", os.pread(fd, 8, 0))
    if n > F.MAX_ST_HEADER or 8 + n > size:
        raise SealedFormatError(f"{name}: safetensors header too large or truncated", reason="loader.source.header")
    raw = os.pread(fd, n, 8)
    if len(raw) != n:
        raise SealedFormatError(f"{name}: truncated", reason="loader.source.header")
    return F.parse_st_header(raw, size - 8 - n, SealedFormatError)


def _seal_shard(src: Path, dst: Path, name: str, dek: DataKey, model_id: str, model_version: int,
                chunk_size: int, conceal: bool, rng: Callable[[int], bytes], workers: int,
                bar: Any) -> tuple[ShardEntry, int, int]:
    sfd = os.open(src, os.O_RDONLY)
    try:
        size = os.fstat(sfd).st_size
        st = _read_source_header(sfd, size, name)
        data_start = 8 + len(st.raw)
        dlen = st.data_len
        nch = F.n_chunks(dlen, chunk_size)
        salt = rng(32)
        if len(salt) != 32:
            raise _args_error("rng returned the wrong length")
        chunk_aead, header_aead, _ = F.derive_shard_keys(dek._material(), salt, model_id, name)
        inner = F.build_inner_header(model_id, model_version, name, st.raw)
        hlen = len(inner) + F.TAG_LEN
        if hlen > F.MAX_HEADER_LEN:
            raise SealedFormatError(f"{name}: header too large", reason="loader.source.header")
        doff = F.data_offset_for(hlen, nch)
        pre = F.Preamble(F.FLAG_CONCEALED if conceal else 0, chunk_size.bit_length() - 1, salt, doff, dlen, hlen).pack()
        body = F.seal_header(header_aead, pre, inner, conceal)
        assert len(body) == hlen
        digest = hashlib.sha256(pre + body).digest()
        aad = F.chunk_aad(digest)
        tags = bytearray(F.TAG_LEN * nch)
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        direct = _open_direct(dst)
        try:
            _preallocate(dfd, doff + dlen)
            _pwrite_full(dfd, memoryview(pre + body), 0)
            bsz = min(chunk_size, max(dlen, 1))

            def make_state() -> tuple[bytearray, mmap.mmap]:
                # the output buffer is page-aligned (anonymous mmap) for O_DIRECT writes
                return bytearray(bsz), mmap.mmap(-1, -(-(bsz + F.TAG_LEN) // _ALIGN) * _ALIGN)

            def task(state: tuple[bytearray, mmap.mmap], i: int) -> None:
                inb, outm = state
                off = i * chunk_size
                ln = min(chunk_size, dlen - off)
                with memoryview(inb) as mi_all, memoryview(outm) as mo_all:
                    mi, mo = mi_all[:ln], mo_all[:ln + F.TAG_LEN]
                    _pread_full(sfd, mi, data_start + off)
                    chunk_aead.encrypt_into(F.chunk_nonce(i, i == nch - 1), mi, aad, mo)
                    tags[i * F.TAG_LEN:(i + 1) * F.TAG_LEN] = mo[ln:]
                    if direct[0] >= 0 and ln % _ALIGN == 0:
                        try:
                            _pwrite_full(direct[0], mo[:ln], doff + off)
                        except OSError:
                            direct[0] = -2  # O_DIRECT refused at write time: buffered from now on
                            _pwrite_full(dfd, mo[:ln], doff + off)
                    else:
                        _pwrite_full(dfd, mo[:ln], doff + off)
                    del mi, mo
                if bar is not None:
                    bar.update(ln)

            def cleanup(state: tuple[bytearray, mmap.mmap]) -> None:
                inb, outm = state  # both held plaintext
                inb[:] = bytes(len(inb))
                outm.seek(0)
                outm.write(bytes(len(outm)))
                outm.close()

            run_threads(range(nch), workers, task, make_state, cleanup, name="weightseal-seal")
            _pwrite_full(dfd, memoryview(tags), F.PREAMBLE_LEN + hlen)
        finally:
            os.close(dfd)
            if direct[0] >= 0:
                os.close(direct[0])
    finally:
        os.close(sfd)
    return ShardEntry(name, name + F.SEALED_SUFFIX, doff + dlen, digest.hex()), len(st.tensors), dlen


_ALIGN = 4096
DIRECT_IO = os.environ.get("WEIGHTSEAL_SEAL_DIRECT", "1") != "0"


def _open_direct(path: Path) -> list[int]:
    """A second, O_DIRECT descriptor for the ciphertext: written straight from our (reused,
    page-aligned) buffers to the device, sealing does not have to fault in a fresh page-cache
    page for every byte of output (on VMs whose idle memory goes back to the host that costs
    more than the encryption).  [-1] where O_DIRECT is unavailable (tmpfs, other OSes)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or not DIRECT_IO:
        return [-1]
    try:
        return [os.open(path, os.O_WRONLY | flag)]
    except OSError:
        return [-1]


def _preallocate(fd: int, size: int) -> None:
    """Reserve the whole file up front: on ext4/xfs, writing into fallocated (unwritten) extents
    is ~10x faster than extending a file page by page.  Unreserved bytes read as zeros."""
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError:
        pass
    os.ftruncate(fd, size)


def _copy_with_mac(src: Path, dst: Path, mac_key: bytes, name: str) -> FileEntry:
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while True:
            b = fi.read(1 << 20)
            if not b:
                break
            h.update(b)
            fo.write(b)
            size += len(b)
    return FileEntry(name, size, F.file_mac(mac_key, name, h))


def seal_checkpoint(src_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, model_id: str,
                    model_version: int = 1, key: DataKey | LocalKey, key_ref: dict[str, Any] | None = None,
                    conceal_header: bool = False, chunk_size: int = F.DEFAULT_CHUNK_SIZE,
                    workers: int | None = None, progress: bool = False,
                    _rng: Callable[[int], bytes] | None = None) -> SealReport:
    """Seal an HF-style checkpoint directory into ``out_dir`` (which must not exist).

    ``key``: a ``LocalKey`` (offline/test: a random DEK is generated and stored wrapped in the
    manifest) or a ``DataKey`` from the key service (``key_ref`` is then stored as given, e.g.
    ``{"source": "vault", "key": "...", "wrapped": "vault:v1:..."}``).
    ``_rng`` injects randomness for golden test vectors only; never pass it otherwise.
    """
    t0 = time.perf_counter()
    rng = _rng or secrets.token_bytes
    if not isinstance(model_id, str) or not 0 < len(model_id) <= 1024:
        raise _args_error("model_id must be a non-empty string (<= 1024 chars)")
    if type(model_version) is not int or not 0 <= model_version < 2**63:
        raise _args_error("model_version must be a non-negative integer")
    if (type(chunk_size) is not int or chunk_size & (chunk_size - 1)
            or not 1 << F.MIN_CHUNK_SHIFT <= chunk_size <= 1 << F.MAX_CHUNK_SHIFT):
        raise _args_error("chunk_size must be a power of two between 4 KiB and 1 GiB")
    workers = workers or os.cpu_count() or 1
    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise SealedFormatError(f"{src} is not a directory", reason="loader.source.missing")
    if out.exists() or out.is_symlink():
        raise _args_error(f"{out} already exists; refusing to overwrite")
    entries = sorted(src.iterdir(), key=lambda p: p.name)
    shard_paths = [p for p in entries if p.name.endswith(".safetensors") and p.is_file()]
    if not shard_paths:
        raise SealedFormatError(f"{src} contains no *.safetensors files", reason="loader.source.empty")
    if isinstance(key, LocalKey):
        dek = DataKey.generate(rng)
        kref = key.wrap_dek(dek, model_id, model_version, rng)
        if key_ref is not None:
            raise _args_error("key_ref is only for caller-supplied DataKeys")
    elif isinstance(key, DataKey):
        dek = DataKey(key._material())
        kref = dict(key_ref) if key_ref is not None else {"source": "external"}
        try:
            json.dumps(kref)
        except (TypeError, ValueError):
            raise _args_error("key_ref must be JSON-serialisable") from None
    else:
        raise TypeError("key must be a DataKey or a LocalKey")
    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(6)}"
    try:
        tmp.mkdir(mode=0o755)
    except OSError as exc:
        raise _args_error(f"cannot create {tmp}: {exc.strerror}") from None
    bar: Any = None
    try:
        msalt = rng(32)
        mac_key, index_aead = F.derive_manifest_keys(dek._material(), msalt, model_id, model_version)
        total = sum(p.stat().st_size for p in shard_paths)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="sealing")
        shards: list[ShardEntry] = []
        ntensors = nbytes = 0
        for p in shard_paths:
            ent, nt, nb = _seal_shard(p, tmp / (p.name + F.SEALED_SUFFIX), p.name, dek, model_id, model_version,
                                      chunk_size, conceal_header, rng, workers, bar)
            shards.append(ent)
            ntensors += nt
            nbytes += nb
        index: dict[str, Any] | None = None
        files: list[FileEntry] = []
        skipped: list[str] = []
        for p in entries:
            if p in shard_paths:
                continue
            if p.name == F.INDEX_NAME and p.is_file():
                if p.stat().st_size > _MAX_INDEX:
                    raise SealedFormatError("index file too large", reason="loader.source.index")
                raw = p.read_bytes()
                if conceal_header:
                    blob = index_aead.encrypt(F.HEADER_NONCE, raw, F.LABEL_MANIFEST + b"/index")
                else:
                    blob = raw
                index = {"name": p.name, "encrypted": conceal_header, "data": base64.b64encode(blob).decode()}
            elif p.is_file() and not p.name.startswith(".") and p.name != F.MANIFEST_NAME:
                files.append(_copy_with_mac(p, tmp / p.name, mac_key, p.name))
                os.chmod(tmp / p.name, stat.S_IMODE(p.stat().st_mode) & 0o755 | 0o600)
            else:
                skipped.append(p.name)
                log.warning("not sealing %s (not a regular top-level file)", p.name)
        body = {"model_id": model_id, "model_version": model_version, "salt": msalt.hex(), "key_ref": kref,
                "concealed": bool(conceal_header),
                "shards": [{"name": s.name, "file": s.file, "size": s.size, "header_sha256": s.header_sha256} for s in shards],
                "index": index,
                "files": [{"name": f.name, "size": f.size, "mac": f.mac} for f in files]}
        (tmp / F.MANIFEST_NAME).write_bytes(F.pack_manifest(body, mac_key))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        dek.wipe()
    return SealReport(out, model_id, model_version, kref, shards, [f.name for f in files], ntensors, nbytes,
                      time.perf_counter() - t0, skipped)
