"""Host memory for decrypted tensors: a Linux fast path and a portable fallback.

Loading to CPU is bound by first-touching fresh memory: one page fault per 4 KiB page, each a trap
into the kernel (and, on a VM whose free memory went back to the host, an exit to the hypervisor).
So each large tensor gets a private anonymous mapping of its own, and the worker that is about to
decrypt a chunk into it first asks the kernel to populate that chunk's pages with
``madvise(MADV_POPULATE_WRITE)`` (Linux >= 5.14): one system call per chunk instead of a trap per
page, made through ctypes, which drops the GIL, so the workers populate in parallel.  Measured on
the 2-core CI VM (32 MiB buffers, 2 threads): 0.12 s/GiB warm and 0.35-0.40 s/GiB cold, against
0.19-0.23 and 0.6-0.9 s/GiB for touching the same memory page by page (torch's own parallel fill
included).  Transparent huge pages were measured too and rejected: twice as fast again when the
kernel hands out warm 2 MiB blocks, but on this VM it mostly hands out blocks the host has taken
back, and those populate 3-20x slower.  See FORMAT.md, "Loading: memory and threads".

The mappings are marked ``MADV_DONTDUMP``: decrypted weights never land in a core dump.

Everything here degrades quietly to torch's allocator (pages then fault in on first write, which
is correct, only slower): on other systems, without ctypes/libc, on kernels older than 5.14
(EINVAL), or where a seccomp filter refuses madvise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import sys
from typing import Any

import numpy as np
import torch

__all__ = ["MAP_THRESHOLD", "alloc_host", "populate", "fast_path_available"]

# Tensors at least this large get a mapping of their own; smaller ones come from torch's
# allocator (a mapping costs a VMA each, and vm.max_map_count is 65530 by default; a model
# has far fewer tensors of 1 MiB or more).
MAP_THRESHOLD = 1 << 20

MADV_DONTDUMP = 16
MADV_POPULATE_WRITE = 23
_PAGE = mmap.PAGESIZE


def _load_madvise() -> Any:
    if not sys.platform.startswith("linux") or os.environ.get("WEIGHTSEAL_NO_POPULATE"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_madvise = _load_madvise()
_enabled = _madvise is not None


def fast_path_available() -> bool:
    """True while large buffers are separate mappings populated by the kernel (Linux >= 5.14)."""
    return _enabled


def alloc_host(nbytes: int) -> tuple[np.ndarray, bool]:
    """A fresh, writable, uninitialised uint8 buffer of ``nbytes``, and whether it is a private
    mapping of its own (then ``populate`` applies to it).  Its memory goes back to the system
    when the last array or tensor viewing it is freed, exactly like torch's."""
    if _enabled and nbytes >= MAP_THRESHOLD and nbytes > 0:
        try:
            m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                          prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            pass  # e.g. vm.max_map_count reached: torch's allocator still works
        else:
            arr = np.frombuffer(m, dtype=np.uint8)  # keeps the mapping alive
            _advise(arr.ctypes.data, nbytes, MADV_DONTDUMP)  # best effort
            return arr, True
    return torch.empty(nbytes, dtype=torch.uint8).numpy(), False


def populate(buf: np.ndarray) -> None:
    """Have the kernel allocate the pages under ``buf`` (a slice of a mapped ``alloc_host``
    buffer) for writing, in one system call made without the GIL.  If the kernel refuses the
    advice itself, the fast path is switched off for the rest of the process; the pages then
    fault in on first write as usual, so the result is the same either way."""
    global _enabled
    if not _enabled or buf.nbytes == 0:
        return
    if _advise(buf.ctypes.data, buf.nbytes, MADV_POPULATE_WRITE) != 0:
        if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
            _enabled = False
        # ENOMEM/EFAULT/EINTR: nothing to undo; the decryption faults the pages in itself


def _advise(addr: int, n: int, advice: int) -> int:
    """madvise over the whole pages covering [addr, addr + n)."""
    if _madvise is None:
        return -1
    lo = addr - addr % _PAGE
    return int(_madvise(lo, addr + n - lo, advice))
