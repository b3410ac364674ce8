"""A thread-safe pool of sandbox workers (processes, containers, ...).

Workers start lazily, one per slot. A call checks a worker out, uses it alone, and checks it
back in; a worker found broken is destroyed and its slot refilled on the next checkout, so a
dead worker is replaced transparently. :meth:`WorkerPool.map` runs calls on all slots in
parallel and keeps the input order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

W = TypeVar("W")
T = TypeVar("T")
R = TypeVar("R")

__all__ = ["PoolClosed", "WorkerPool"]


class PoolClosed(RuntimeError):
    """The pool was closed; no worker can be checked out."""


class WorkerPool(Generic[W]):
    """``size`` lazily started workers, each used by one caller at a time.

    Args:
        size: Number of worker slots (parallelism).
        factory: ``factory(slot) -> worker``; called when a slot is empty.
        destroy: ``destroy(worker)``; called for broken workers and on :meth:`close`.
            Must not raise.
    """

    def __init__(self, size: int, factory: Callable[[int], W], destroy: Callable[[W], None]):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"workers must be an int >= 1, got {size!r}")
        self.size = size
        self._factory = factory
        self._destroy = destroy
        self._workers: list[W | None] = [None] * size
        self._free: queue.Queue[int] = queue.LifoQueue()
        for slot in reversed(range(size)):
            self._free.put(slot)
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def workers(self) -> list[W]:
        """The workers alive now (a snapshot)."""
        with self._lock:
            return [w for w in self._workers if w is not None]

    def acquire(self) -> tuple[int, W]:
        """Check a worker out (blocks until a slot is free; starts a worker if needed).

        Raises:
            PoolClosed: The pool is closed.
        """
        while True:
            if self._closed:
                raise PoolClosed("the sandbox pool is closed")
            try:
                slot = self._free.get(timeout=0.5)
            except queue.Empty:
                continue
            break
        if self._closed:
            self._free.put(slot)
            raise PoolClosed("the sandbox pool is closed")
        worker = self._workers[slot]
        if worker is None:
            try:
                worker = self._factory(slot)
            except BaseException:
                self._free.put(slot)
                raise
            with self._lock:
                if self._closed:
                    self._destroy(worker)
                    self._free.put(slot)
                    raise PoolClosed("the sandbox pool is closed")
                self._workers[slot] = worker
        return slot, worker

    def release(self, slot: int, worker: W, *, broken: bool = False) -> None:
        """Check a worker back in; ``broken=True`` destroys it (the slot restarts lazily)."""
        if broken or self._closed:
            with self._lock:
                if self._workers[slot] is worker:
                    self._workers[slot] = None
            if broken:
                self._destroy(worker)
        self._free.put(slot)

    @contextmanager
    def checkout(self) -> Iterator[tuple[int, W]]:
        """Context manager around :meth:`acquire`/:meth:`release` (broken on exception)."""
        slot, worker = self.acquire()
        ok = False
        try:
            yield slot, worker
            ok = True
        finally:
            self.release(slot, worker, broken=not ok)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` with up to ``size`` calls in flight; order kept."""
        items = list(items)
        if self.size == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._closed:
                raise PoolClosed("the sandbox pool is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="sandbox")
            ex = self._executor
        return list(ex.map(fn, items))

    def close(self) -> None:
        """Destroy every worker. Idempotent; callers blocked in acquire get PoolClosed."""
        with self._lock:
            self._closed = True
            workers = [w for w in self._workers if w is not None]
            self._workers = [None] * self.size
            ex, self._executor = self._executor, None
        for w in workers:
            self._destroy(w)
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
