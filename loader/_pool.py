"""A tiny worker pool shared by sealing and loading: each thread keeps its own state (scratch
buffers, cipher contexts), pulls tasks in order, and the first exception stops every thread
and is re-raised once all have stopped; ``cleanup(state)`` always runs (it zeroes scratch)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["run_threads"]


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
