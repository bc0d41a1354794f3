"""A tiny worker pool shared by sealing and loading: each thread keeps its own state (scratch
buffers, cipher contexts), pulls tasks in order, and the first exception stops every thread
and is re-raised once all have stopped; ``cleanup(state)`` always runs (it zeroes scratch)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["BatchPool", "run_threads"]


def run_threads(tasks: Sequence[Any], workers: int, fn: Callable[[Any, Any], None],
                make_state: Callable[[], Any], cleanup: Callable[[Any], None], *,
                name: str = "weightseal-worker") -> None:
    lock = threading.Lock()
    it: Iterator[Any] = iter(tasks)
    errors: list[BaseException] = []

    def run() -> None:
        state = make_state()
        try:
            while not errors:
                with lock:
                    t = next(it, None)
                if t is None:
                    return
                fn(state, t)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
        finally:
            cleanup(state)

    n = max(1, min(workers, len(tasks)))
    if n == 1:
        run()
    else:
        ths = [threading.Thread(target=run, name=f"{name}-{k}", daemon=True) for k in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    if errors:
        raise errors[0]


class BatchPool:
    """Persistent worker threads for many small batches (the CUDA staging ring decrypts one
    slot-sized batch of chunks at a time: spawning threads per batch would cost ~1 ms each on a
    16-core host).  ``run`` returns once every task of the batch has finished, and re-raises
    the first error only then, so no worker is still writing when the caller wipes buffers."""

    def __init__(self, workers: int, *, name: str = "weightseal-ring") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) if workers > 1 else None

    def run(self, tasks: Sequence[Any], fn: Callable[[Any], None]) -> None:
        if self._ex is None or len(tasks) <= 1:
            for t in tasks:
                fn(t)
            return
        futs = [self._ex.submit(fn, t) for t in tasks]
        first: BaseException | None = None
        for f in futs:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after all stopped
                if first is None:
                    first = exc
                    for g in futs:
                        g.cancel()
        if first is not None:
            raise first

    def close(self) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None

    def __enter__(self) -> BatchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
