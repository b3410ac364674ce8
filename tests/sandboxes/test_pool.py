"""Tests for the thread-safe worker pool."""

from __future__ import annotations

import threading
import time

import pytest

from sandboxes.pool import PoolClosed, WorkerPool


class _Worker:
    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.destroyed = False
        self.busy = False


def _pool(size: int, made: list[_Worker]) -> WorkerPool[_Worker]:
    def factory(slot: int) -> _Worker:
        w = _Worker(slot)
        made.append(w)
        return w

    def destroy(w: _Worker) -> None:
        w.destroyed = True

    return WorkerPool(size, factory, destroy)


def test_lazy_start_and_reuse() -> None:
    made: list[_Worker] = []
    pool = _pool(2, made)
    assert made == []
    slot, w = pool.acquire()
    pool.release(slot, w)
    slot2, w2 = pool.acquire()
    assert w2 is w and len(made) == 1
    pool.release(slot2, w2)
    pool.close()
    assert w.destroyed


def test_broken_worker_is_replaced() -> None:
    made: list[_Worker] = []
    pool = _pool(1, made)
    with pytest.raises(RuntimeError):
        with pool.checkout() as (_slot, w):
            raise RuntimeError("boom")
    assert w.destroyed
    with pool.checkout() as (_slot, w2):
        assert w2 is not w and not w2.destroyed
    pool.close()


def test_map_keeps_order_and_never_shares_a_worker() -> None:
    made: list[_Worker] = []
    pool = _pool(3, made)
    lock = threading.Lock()
    peak = [0, 0]

    def work(x: int) -> int:
        with pool.checkout() as (_slot, w):
            assert not w.busy, "a worker was handed to two callers at once"
            w.busy = True
            with lock:
                peak[0] += 1
                peak[1] = max(peak[1], peak[0])
            time.sleep(0.01)
            with lock:
                peak[0] -= 1
            w.busy = False
            return x * x

    assert pool.map(work, range(30)) == [x * x for x in range(30)]
    assert 1 <= peak[1] <= 3
    assert len(made) <= 3
    pool.close()


def test_close_is_idempotent_and_blocks_new_checkouts() -> None:
    made: list[_Worker] = []
    pool = _pool(1, made)
    pool.close()
    pool.close()
    with pytest.raises(PoolClosed):
        pool.acquire()


def test_factory_failure_frees_the_slot() -> None:
    calls = []

    def factory(slot: int) -> _Worker:
        calls.append(slot)
        if len(calls) == 1:
            raise OSError("cannot start")
        return _Worker(slot)

    pool: WorkerPool[_Worker] = WorkerPool(1, factory, lambda w: None)
    with pytest.raises(OSError):
        pool.acquire()
    slot, w = pool.acquire()  # the slot was not lost
    pool.release(slot, w)
    pool.close()


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bad_size(size: object) -> None:
    with pytest.raises(ValueError, match="workers"):
        WorkerPool(size, _Worker, lambda w: None)  # type: ignore[arg-type]
