#!/usr/bin/env python
"""Load benchmark: sealed loading vs plain safetensors, tensorizer (encrypted) and the memcpy floor.

Builds a checkpoint with a fixed seed (many 4096x4096 bf16 tensors + a few small odd-shaped fp32)
in a temp dir, seals it, serialises the same tensors with tensorizer encryption, and then in ONE
process, alternating cases after a warm-up, with the files in page cache, times:

  safetensors  safetensors.torch.load_file + clone every tensor (materialised)
  sealed       weightseal.loader.load_sealed(..., device="cpu")
  tensorizer   TensorDeserializer(..., encryption=DecryptionParams) (encrypted deserialisation)
  floor        pread the plaintext file(s) into one fresh buffer per file (all cores)

in two memory states: warm (cases back to back) and cold (a ~3 s pause before each case, so
freed memory has gone back to the host and must be faulted in again).  Not a timed test.

    python tests/benchmarks/bench_load.py [--size-gib 2] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_HERE = Path(__file__).resolve()


class RssSampler:
    """Peak anonymous resident memory during a case (RssAnon, sampled from /proc/self/status):
    file pages mapped from the page cache are not counted, they are shared and reclaimable."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._t: threading.Thread | None = None

    def _rss(self) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> RssSampler:
        self.peak = self._rss()
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, self._rss())

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, self._rss())
        self._stop.set()
        assert self._t is not None
        self._t.join()


def build_checkpoint(root: Path, size_gib: float, shard_gib: float = 1.0) -> tuple[Path, dict[str, torch.Tensor], int]:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1234)
    big = 4096 * 4096 * 2
    n_big = max(1, int(size_gib * (1 << 30) // big))
    side = 4096
    if size_gib < 0.1:  # quick mode: smaller tensors so the sizes stay tiny
        side = 512
        n_big = max(2, int(size_gib * (1 << 30) // (side * side * 2)))
    tensors: dict[str, torch.Tensor] = {}
    for i in range(n_big):
        tensors[f"layers.{i}.weight"] = torch.randn(side, side, generator=g).to(torch.bfloat16)
        if i % 8 == 0:
            tensors[f"layers.{i}.norm"] = torch.randn(side + 3, generator=g)  # odd-shaped fp32
            tensors[f"layers.{i}.bias"] = torch.randn(7, 13, generator=g)
    src = root / "plain"
    src.mkdir()
    per_shard = max(1, int(shard_gib * (1 << 30)))
    shard: dict[str, torch.Tensor] = {}
    shards: list[dict[str, torch.Tensor]] = []
    acc = 0
    for k, t in tensors.items():
        shard[k] = t
        acc += t.numel() * t.element_size()
        if acc >= per_shard:
            shards.append(shard)
            shard, acc = {}, 0
    if shard:
        shards.append(shard)
    weight_map = {}
    for i, sh in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, str(src / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in sh})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    (src / "config.json").write_text('{"model_type": "bench"}')
    return src, tensors, total


def cat_files(paths: list[Path]) -> None:
    """Bring the files into page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pause", type=float, default=3.0, help="seconds before each case in the cold state")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (size 0.02 GiB, 1 repeat, no pause)")
    ap.add_argument("--cases", default="safetensors,sealed,tensorizer,floor")
    ap.add_argument("--alloc", default=None, help="override weightseal ALLOC_MODE (tensor|shard)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write results as JSON here")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.quick:
        args.size_gib, args.repeats, args.pause = 0.02, 1, 0.05

    import weightseal.loader._open as wopen
    from safetensors.torch import load_file
    from weightseal.loader import DataKey, load_sealed, seal_checkpoint

    if args.alloc:
        wopen.ALLOC_MODE = args.alloc
    cases = args.cases.split(",")
    tmpctx = tempfile.TemporaryDirectory(prefix="ws-bench-", dir=args.dir)
    root = Path(tmpctx.name)
    try:
        print(f"building a {args.size_gib} GiB checkpoint in {root} ...", flush=True)
        src, tensors, total = build_checkpoint(root, args.size_gib, shard_gib=1.0 if not args.quick else 0.01)
        st_files = sorted(src.glob("*.safetensors"))
        key = DataKey(bytes(range(32)))
        # sealing speed (files in page cache; output written through the page cache)
        cat_files(st_files)
        seal_times = []
        for r in range(max(1, min(2, args.repeats))):
            out = root / f"sealed{r}"
            t0 = time.perf_counter()
            seal_checkpoint(src, out, model_id="bench/model", key=key, key_ref={"source": "bench"}, workers=args.workers)
            seal_times.append(time.perf_counter() - t0)
        sealed = root / "sealed0"
        seal_gbps = total / min(seal_times) / 1e9
        tz_path = root / "model.tensors"
        dec = None
        if "tensorizer" in cases:
            from tensorizer import (
                DecryptionParams,
                EncryptionParams,
                TensorSerializer,
            )

            enc = EncryptionParams.random()
            ser = TensorSerializer(str(tz_path), encryption=enc)
            ser.write_state_dict(tensors)
            ser.close()
            dec = DecryptionParams.from_key(enc.key)
        del tensors
        gc.collect()
        all_files = st_files + sorted(sealed.glob("*.sealed")) + ([tz_path] if tz_path.exists() else [])
        cat_files(all_files)

        def run_safetensors() -> Any:
            out = {}
            for f in st_files:
                for k, t in load_file(str(f)).items():
                    out[k] = t.clone()
            return out

        def run_sealed() -> Any:
            return load_sealed(sealed, key, workers=args.workers)

        def run_tensorizer() -> Any:
            from tensorizer import TensorDeserializer

            d = TensorDeserializer(str(tz_path), device="cpu", encryption=dec)
            out = dict(d.items())
            d.close()
            return out

        def run_floor() -> Any:
            # The fastest plain way we found to get the plaintext bytes from the page cache into
            # fresh memory on this VM: pread(2) straight into one fresh buffer per file, one
            # thread per core (kernel copy, no source mapping to fault in).  Measured faster
            # than mapping the file and copying it (np.copyto from an mmap, with or without
            # MAP_POPULATE), so it is the honest floor.
            bufs = []
            nthreads = args.workers or os.cpu_count() or 1
            piece = 8 << 20
            for f in st_files:
                size = os.path.getsize(f)
                dst = torch.empty(size, dtype=torch.uint8).numpy()
                view = memoryview(dst)
                fd = os.open(f, os.O_RDONLY)
                try:
                    step = -(-size // nthreads)

                    def work(lo: int, hi: int, fd: int = fd, view: memoryview = view) -> None:
                        for off in range(lo, hi, piece):
                            end_ = min(off + piece, hi)
                            while off < end_:
                                n = os.preadv(fd, [view[off:end_]], off)
                                if n <= 0:
                                    raise OSError("short read")
                                off += n

                    ths = [threading.Thread(target=work, args=(lo, min(lo + step, size))) for lo in range(0, size, step)]
                    for t in ths:
                        t.start()
                    for t in ths:
                        t.join()
                finally:
                    os.close(fd)
                view.release()
                bufs.append(dst)
            return bufs

        fns: dict[str, Callable[[], Any]] = {"safetensors": run_safetensors, "sealed": run_sealed,
                                             "tensorizer": run_tensorizer, "floor": run_floor}

        def with_alloc(mode: str) -> Callable[[], Any]:
            def run() -> Any:
                old = wopen.ALLOC_MODE
                wopen.ALLOC_MODE = mode
                try:
                    return run_sealed()
                finally:
                    wopen.ALLOC_MODE = old
            return run

        for c in cases:  # "sealed@shard" etc.: the loader with another allocation strategy
            if c.startswith("sealed@"):
                fns[c] = with_alloc(c.split("@", 1)[1])
        results: dict[tuple[str, str], list[float]] = {}
        peaks: dict[tuple[str, str], int] = {}
        # warm-up: each case once
        for c in cases:
            r = fns[c]()
            del r
            gc.collect()
        for state in ("warm", "cold"):
            for _ in range(args.repeats):
                for c in cases:
                    if state == "cold":
                        time.sleep(args.pause)
                    with RssSampler() as rs:
                        t0 = time.perf_counter()
                        r = fns[c]()
                        dt = time.perf_counter() - t0
                    del r
                    gc.collect()
                    results.setdefault((state, c), []).append(dt)
                    peaks[(state, c)] = max(peaks.get((state, c), 0), rs.peak)

        print()
        print(f"checkpoint: {total / (1 << 30):.2f} GiB in {len(st_files)} shard(s); {os.cpu_count()} cpus; "
              f"repeats {args.repeats}; alloc={wopen.ALLOC_MODE}; torch threads {torch.get_num_threads()}")
        print(f"sealing: {seal_gbps:.2f} GB/s (best of {len(seal_times)}: {', '.join(f'{t:.2f}s' for t in seal_times)})")
        hdr = f"{'state':5} {'case':12} {'median s':>9} {'min s':>7} {'max s':>7} {'GB/s':>6} {'peak anon GiB':>12}"
        print(hdr)
        cases_w = max(12, max(len(c) for c in cases))
        summary: dict[str, Any] = {"size_bytes": total, "seal_gbps": seal_gbps, "cases": {}}
        for state in ("warm", "cold"):
            for c in cases:
                ts = results[(state, c)]
                med = statistics.median(ts)
                print(f"{state:5} {c:{cases_w}} {med:9.3f} {min(ts):7.3f} {max(ts):7.3f} {total / med / 1e9:6.2f} {peaks[(state, c)] / (1 << 30):12.2f}")
                summary["cases"][f"{state}/{c}"] = {"median": med, "min": min(ts), "max": max(ts), "peak_rss": peaks[(state, c)]}
        print()
        for state in ("warm", "cold"):
            if "sealed" not in cases:
                continue
            s = statistics.median(results[(state, "sealed")])
            parts = []
            for c, label in (("safetensors", "sealed/safetensors"), ("tensorizer", "tensorizer/sealed"), ("floor", "sealed/floor")):
                if c not in cases:
                    continue
                o = statistics.median(results[(state, c)])
                ratio = s / o if c != "tensorizer" else o / s
                parts.append(f"{label} = {ratio:.2f}")
                summary["cases"][f"{state}/ratio/{label}"] = ratio
            print(f"{state}: " + ", ".join(parts))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        tmpctx.cleanup()


if __name__ == "__main__":
    sys.exit(main())
