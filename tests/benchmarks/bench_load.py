#!/usr/bin/env python
"""Load benchmark: sealed loading vs plain safetensors, tensorizer (encrypted) and the memcpy floor.

Builds a checkpoint with a fixed seed (many 4096x4096 bf16 tensors + a few small odd-shaped fp32)
in a temp dir, seals it, serialises the same tensors with tensorizer encryption, and then in ONE
process, alternating cases after a warm-up, with the files in page cache, times:

  safetensors  safetensors.torch.load_file + clone every tensor (materialised)
  sealed       weightseal.loader.load_sealed(..., device="cpu")
  tensorizer   TensorDeserializer(..., encryption=DecryptionParams) (encrypted deserialisation)
  floor        copy the plaintext file(s) into one fresh, kernel-populated buffer per file (all cores)

in two memory states: warm (cases back to back) and cold (a ~3 s pause before each case, so
freed memory has gone back to the host and must be faulted in again).  Not a timed test.

With ``--device cuda[:N]`` it compares loading onto the GPU instead (target: sealed at most 1.15x
safetensors):

  safetensors  safetensors.torch.load_file(f, device="cuda")
  sealed       load_sealed(..., device="cuda") (pinned staging ring, async copies)
  tensorizer   TensorDeserializer(..., device="cuda", encryption=...)

each followed by torch.cuda.synchronize(), and also reports peak GPU memory and peak host
anonymous memory (the staging ring keeps the latter bounded whatever the model size).

    python tests/benchmarks/bench_load.py [--size-gib 2] [--repeats 5] [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import gc
import json
import mmap
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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
    ap.add_argument("--cases", default=None, help="default: safetensors,sealed,tensorizer,floor (cpu) / "
                    "safetensors,sealed,tensorizer (cuda)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
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
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"--device {args.device}: this torch build has no usable CUDA device", file=sys.stderr)
        return 2
    if dev.type not in ("cpu", "cuda"):
        print(f"--device {args.device}: only cpu and cuda are supported", file=sys.stderr)
        return 2
    cases = (args.cases or ("safetensors,sealed,tensorizer" if cuda else "safetensors,sealed,tensorizer,floor")).split(",")
    if cuda and "floor" in cases:
        print("--device cuda: there is no floor case on the GPU", file=sys.stderr)
        return 2

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)
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
                if cuda:  # safetensors' own device path
                    out.update(load_file(str(f), device=str(dev)))
                else:  # load_file on CPU is a lazy mmap: materialise every tensor
                    for k, t in load_file(str(f)).items():
                        out[k] = t.clone()
            sync()
            return out

        def run_sealed() -> Any:
            out = load_sealed(sealed, key, device=dev, workers=args.workers)
            sync()
            return out

        def run_tensorizer() -> Any:
            from tensorizer import TensorDeserializer

            d = TensorDeserializer(str(tz_path), device=str(dev), encryption=dec)
            out = dict(d.items())
            d.close()
            sync()
            return out

        def run_floor() -> Any:
            # The fastest plain way we found to get the plaintext bytes from the page cache into
            # fresh memory on this VM: one fresh mapping per file, and on each core, in 8 MiB
            # pieces, have the kernel populate the piece (MADV_POPULATE_WRITE, the loader's own
            # trick) and copy it from a mapping of the file.  Measured faster than pread(2) into
            # the same buffers with or without populating them, and than copying into torch-
            # allocated memory (page faults), so it is the honest floor.
            from weightseal.loader._mem import alloc_host, populate

            bufs = []
            nthreads = args.workers or os.cpu_count() or 1
            piece = 8 << 20
            for f in st_files:
                size = os.path.getsize(f)
                dst, _ = alloc_host(size)
                fd = os.open(f, os.O_RDONLY)
                try:
                    mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
                finally:
                    os.close(fd)
                src = np.frombuffer(mm, dtype=np.uint8)
                lock = threading.Lock()
                pieces = iter(range(0, size, piece))

                def work(dst: Any = dst, src: Any = src, size: int = size, lock: Any = lock, pieces: Any = pieces) -> None:
                    while True:
                        with lock:
                            off = next(pieces, None)
                        if off is None:
                            return
                        end_ = min(off + piece, size)
                        populate(dst[off:end_])
                        np.copyto(dst[off:end_], src[off:end_])

                ths = [threading.Thread(target=work) for _ in range(nthreads)]
                for t in ths:
                    t.start()
                for t in ths:
                    t.join()
                del work, ths, src
                mm.close()
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
        gpu_peaks: dict[tuple[str, str], int] = {}
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
                    if cuda:
                        torch.cuda.reset_peak_memory_stats(dev)
                    with RssSampler() as rs:
                        t0 = time.perf_counter()
                        r = fns[c]()
                        dt = time.perf_counter() - t0
                    del r
                    gc.collect()
                    results.setdefault((state, c), []).append(dt)
                    peaks[(state, c)] = max(peaks.get((state, c), 0), rs.peak)
                    if cuda:
                        gpu_peaks[(state, c)] = max(gpu_peaks.get((state, c), 0), torch.cuda.max_memory_allocated(dev))

        print()
        print(f"checkpoint: {total / (1 << 30):.2f} GiB in {len(st_files)} shard(s); {os.cpu_count()} cpus; "
              f"repeats {args.repeats}; device {dev}"
              + (f" ({torch.cuda.get_device_name(dev)})" if cuda else f"; alloc={wopen.ALLOC_MODE}")
              + f"; torch threads {torch.get_num_threads()}")
        print(f"sealing: {seal_gbps:.2f} GB/s (best of {len(seal_times)}: {', '.join(f'{t:.2f}s' for t in seal_times)})")
        hdr = f"{'state':5} {'case':12} {'median s':>9} {'min s':>7} {'max s':>7} {'GB/s':>6} {'peak anon GiB':>12}"
        if cuda:
            hdr += f" {'peak gpu GiB':>12}"
        print(hdr)
        cases_w = max(12, max(len(c) for c in cases))
        summary: dict[str, Any] = {"size_bytes": total, "seal_gbps": seal_gbps, "device": str(dev), "cases": {}}
        for state in ("warm", "cold"):
            for c in cases:
                ts = results[(state, c)]
                med = statistics.median(ts)
                line = f"{state:5} {c:{cases_w}} {med:9.3f} {min(ts):7.3f} {max(ts):7.3f} {total / med / 1e9:6.2f} {peaks[(state, c)] / (1 << 30):12.2f}"
                summary["cases"][f"{state}/{c}"] = {"median": med, "min": min(ts), "max": max(ts), "peak_rss": peaks[(state, c)]}
                if cuda:
                    line += f" {gpu_peaks[(state, c)] / (1 << 30):12.2f}"
                    summary["cases"][f"{state}/{c}"]["peak_gpu"] = gpu_peaks[(state, c)]
                print(line)
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
        print("targets: " + ("sealed/safetensors <= 1.15 on the GPU" if cuda else
                             "sealed/safetensors <= 1.0 (stretch 0.5 warm), tensorizer/sealed >= 2, sealed/floor <= 1.3")
              + ", sealing >= 1 GB/s")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        tmpctx.cleanup()


if __name__ == "__main__":
    sys.exit(main())
