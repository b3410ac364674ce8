"""The shared base of the worker backends: a pool of warm workers speaking the frame protocol.

A worker is anything that runs the sandbox worker (:mod:`sandboxes.worker`) and carries frames
to and from its judge: a local process (:mod:`sandboxes.local`) or a container
(:mod:`sandboxes.docker`). :class:`PooledSandbox` validates jobs, hands them to idle workers
(:class:`~sandboxes.pool.WorkerPool`), retries a job once when its worker died under it, turns
verdict frames into :class:`~sandboxes.base.ExecResult`, and reports (or, with ``strict=True``,
refuses) protections a worker could not apply.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import select
import threading
import time
import warnings
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandboxes import encoding as enc
from sandboxes.base import (
    ExecResult,
    Job,
    Sandbox,
    SandboxUnavailable,
    Status,
    TestSuite,
    check_jobs,
)
from sandboxes.limits import Limits
from sandboxes.pool import WorkerPool
from sandboxes.worker import MODULES

__all__ = ["BOOT", "FramedWorker", "PooledSandbox", "WorkerDied", "WorkerHung",
           "module_sources"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()

#: The worker's boot loader (``python -I -S -c BOOT``): reads the worker's module sources and
#: config from stdin (a 4-byte length, then JSON), makes them modules, runs the judge.
BOOT = r"""
import json, os, sys, types
def _rd(n):
    out = b""
    while len(out) < n:
        b = os.read(0, n - len(out))
        if not b:
            raise SystemExit(3)
        out += b
    return out
_boot = json.loads(_rd(int.from_bytes(_rd(4), "big")))
for _name, _src, _pkg in _boot["modules"]:
    _m = types.ModuleType(_name)
    _m.__file__ = "<" + _name + ">"
    if _pkg:
        _m.__path__ = []
    sys.modules[_name] = _m
    _parent, _, _leaf = _name.rpartition(".")
    if _parent:
        setattr(sys.modules[_parent], _leaf, _m)
    exec(compile(_src, _m.__file__, "exec"), _m.__dict__)
sys.modules["sandboxes.worker.main"].main(_boot["config"])
"""


def module_sources() -> list[list[Any]]:
    """``[name, source, is package]`` of every worker module, in load order."""
    out: list[list[Any]] = []
    for name, is_pkg in MODULES:
        if name == "sandboxes":  # the host package's __init__ imports host-only modules
            out.append([name, "", True])
            continue
        rel = Path(*name.split(".")[1:])
        path = _HERE / rel / "__init__.py" if is_pkg else _HERE / rel.with_suffix(".py")
        out.append([name, path.read_text(encoding="utf-8"), is_pkg])
    return out


def boot_message(config: dict[str, Any], sources: list[list[Any]] | None = None) -> bytes:
    """The bytes a new worker reads first: its sources and config."""
    boot = json.dumps({"modules": sources or module_sources(), "config": config}).encode()
    return len(boot).to_bytes(4, "big") + boot


class WorkerDied(RuntimeError):
    """The worker went away (or reported that it cannot go on)."""


class WorkerHung(RuntimeError):
    """The worker did not answer in time."""


class FramedWorker(abc.ABC):
    """Host-side handle of one worker: frames out, frames in.

    Subclasses provide the transport (:meth:`_write`, :meth:`_read_some`) and the life cycle
    (:meth:`alive`, :meth:`kill`, :meth:`close`); this class provides framing, the hello and
    the job round trip.
    """

    slot: int = 0
    applied: list[str]
    missing: list[str]
    python_version: str = ""
    pid: int = 0
    uids: list[int] = []  #: host uids its candidates run as (root hosts)

    @abc.abstractmethod
    def _write(self, data: bytes) -> None:
        """Send bytes to the judge (raise WorkerDied when the channel is gone)."""

    @abc.abstractmethod
    def _read_some(self, n: int, deadline: float) -> bytes:
        """Up to ``n`` bytes from the judge (raise WorkerDied at EOF, WorkerHung past the
        deadline)."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the worker can take another job."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the worker now."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the worker gracefully (it kills its candidates), then by force."""

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while n:
            b = self._read_some(n, deadline)
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> dict[str, Any]:
        n = int.from_bytes(self._read_exact(4, deadline), "big")
        return enc.decode(self._read_exact(n, deadline), max_bytes=1 << 30)

    def _hello(self, boot: bytes, start_timeout: float) -> dict[str, Any]:
        self._write(boot)
        hello = self._read_frame(time.monotonic() + start_timeout)
        self.applied = list(hello.get("applied", []))
        self.missing = list(hello.get("missing", []))
        self.python_version = str(hello.get("python", ""))
        self.uids = [int(u) for u in hello.get("uids", [])]
        return hello

    def execute(self, payload: bytes, deadline: float) -> dict[str, Any]:
        """Send one job frame; return the judge's verdict frame.

        Raises:
            WorkerDied: The worker is gone, or its judge reported that it cannot go on (a fork
                server died): the pool replaces it and the job is retried once.
            WorkerHung: No verdict before ``deadline``.
        """
        self._write(len(payload).to_bytes(4, "big") + payload)
        out = self._read_frame(deadline)
        if out.get("error_type") == "HarnessError" and out.get("status") == "killed":
            raise WorkerDied("the judge reported a harness failure: "
                             + str(out.get("error", ""))[-300:])
        return out


def read_fd(fd: int, n: int, deadline: float) -> bytes:
    """Up to ``n`` bytes from a pipe, waiting until ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerHung("the worker did not answer in time")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        b = os.read(fd, n)
        if not b:
            raise WorkerDied("the worker exited")
        return b


def _shutdown(pool: WorkerPool[Any], cleanups: list[Any], owner_pid: int) -> None:
    if owner_pid != os.getpid():
        return  # a forked copy of the owner: the workers are not ours to stop
    pool.close()
    for fn in cleanups:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - best effort at shutdown
            log.warning("sandbox cleanup: %s", e)


class PooledSandbox(Sandbox):
    """A sandbox whose executions run in a pool of warm workers.

    Args:
        workers: Parallel workers; ``run_many`` uses all.
        limits: The default per-execution limits.
        strict: Refuse to run (:class:`~sandboxes.base.SandboxUnavailable`) when a worker
            reports a missing protection, instead of warning once.
    """

    name = "pooled"

    def __init__(self, workers: int, limits: Limits, strict: bool) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        self.limits = limits
        self.strict = bool(strict)
        self.missing_protections: list[str] | None = None
        self.applied_protections: list[str] | None = None
        self._cleanups: list[Any] = []
        self._size = workers
        self._make_pool()

    # -- subclass hooks -----------------------------------------------------------------
    @abc.abstractmethod
    def _start_worker(self, slot: int) -> FramedWorker:
        """Start the worker for ``slot`` (called by the pool when the slot is empty)."""

    def _meta(self, slot: int, worker: FramedWorker, attempt: int) -> dict[str, Any]:
        return {
            "backend": self.name,
            "worker": slot,
            "worker_pid": worker.pid,
            "isolation": list(worker.applied),
            "missing_protections": list(worker.missing),
            "python": worker.python_version,
            "attempts": attempt,
        }

    def _check_job(self, memory_mb: int) -> None:
        """Backend-specific checks of a job's limits (raise ValueError)."""

    # -- pool -----------------------------------------------------------------------------
    def _make_pool(self) -> None:
        self._owner_pid = os.getpid()
        self._pool: WorkerPool[FramedWorker] = WorkerPool(self._size, self._started_worker,
                                                          _close_worker)
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._cleanups,
                                           self._owner_pid)

    def _started_worker(self, slot: int) -> FramedWorker:
        w = self._start_worker(slot)
        self.missing_protections = list(w.missing)
        self.applied_protections = list(w.applied)
        if w.missing:
            if self.strict:
                w.kill()
                raise SandboxUnavailable(
                    f"{type(self).__name__}(strict=True): these protections cannot be applied "
                    "on this host: " + "; ".join(w.missing) + ". " + self._strict_hint())
            key = f"{self.name}|" + "|".join(w.missing)
            with _WARN_LOCK:
                first = key not in _WARNED
                _WARNED.add(key)
            if first:
                msg = (f"codegym {self.name} sandbox runs WITHOUT these protections: "
                       + "; ".join(w.missing) + ". Use strict=True to refuse.")
                log.warning(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=5)
        return w

    def _strict_hint(self) -> str:
        return "Pass strict=False to run without them."

    def _check_fork(self) -> None:
        """In a forked copy of the owner (a multiprocessing vector env): workers of its own.
        The inherited pipes belong to the parent's workers, which the child must not touch."""
        if os.getpid() != self._owner_pid:
            self._finalizer.detach()
            self._cleanups = []
            self._forked()
            self._make_pool()

    def _forked(self) -> None:
        """Hook: reset per-process state in a forked copy before its pool starts."""

    @property
    def workers(self) -> int:
        """Number of parallel workers."""
        return self._pool.size

    @property
    def timeout(self) -> float:
        """Default wall-clock limit in seconds."""
        return self.limits.timeout

    @property
    def memory_mb(self) -> int:
        """Default memory budget in MiB."""
        return self.limits.memory_mb

    # -- API ------------------------------------------------------------------------------
    def run(
        self,
        program: str,
        tests: TestSuite,
        *,
        timeout: float | None = None,
        memory_mb: int | None = None,
    ) -> ExecResult:
        """Execute ``program`` against ``tests`` in a fresh sandboxed child. Thread-safe."""
        self._check_fork()
        return self._run_payload(*self._payload(program, tests, timeout, memory_mb))

    def run_many(self, jobs: Iterable[Job]) -> list[ExecResult]:
        """Run jobs over all workers in parallel; results in input order."""
        self._check_fork()
        jobs = list(jobs)
        check_jobs(jobs)
        prepared = [self._payload(j.program, j.tests, j.timeout, j.memory_mb) for j in jobs]
        return self._pool.map(lambda p: self._run_payload(*p), prepared)

    def close(self) -> None:
        """Stop every worker (their candidates die with them). Idempotent."""
        self._finalizer()

    # -- internals ------------------------------------------------------------------------
    def _payload(self, program: str, tests: TestSuite, timeout: float | None,
                 memory_mb: int | None) -> tuple[bytes, int, float]:
        if not isinstance(program, str):
            raise ValueError(f"program must be str, got {type(program).__name__}")
        if not isinstance(tests, TestSuite):
            raise ValueError(f"tests must be a sandboxes.TestSuite, got {type(tests).__name__}")
        if tests.kind not in ("io", "assert"):
            raise ValueError(f"tests.kind must be 'io' or 'assert', got {tests.kind!r}")
        if not isinstance(tests.entry_point, str) or not tests.entry_point.isidentifier():
            raise ValueError(f"tests.entry_point must be a Python identifier, got "
                             f"{tests.entry_point!r}")
        timeout = self.limits.timeout if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number > 0, got {timeout!r}")
        memory_mb = self.limits.memory_mb if memory_mb is None else memory_mb
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb <= 0:
            raise ValueError(f"memory_mb must be an int > 0, got {memory_mb!r}")
        self._check_job(memory_mb)
        if tests.kind == "io":
            if not tests.cases:
                raise ValueError("tests.cases is empty: an io suite needs at least one IOCase")
            cases = []
            for i, c in enumerate(tests.cases):
                if not isinstance(c.args, tuple):
                    raise ValueError(f"tests.cases[{i}].args must be a tuple, got "
                                     f"{type(c.args).__name__}")
                try:
                    enc.to_jsonable(c.args)
                    enc.to_jsonable(c.expected)
                except (enc.EncodingError, AttributeError) as e:
                    raise ValueError(f"tests.cases[{i}] is not plain data: {e}") from None
                cases.append([c.args, c.expected])
        else:
            if "def check" not in tests.check:
                raise ValueError("tests.check must define check(candidate) for kind='assert'")
            cases = []
        job = {
            "program": program,
            "kind": tests.kind,
            "entry": tests.entry_point,
            "cases": cases,
            "check": tests.check,
            "helpers": tests.helpers,
            "tol": float(tests.float_tol),
            "timeout": float(timeout),
            "memory_mb": int(memory_mb),
        }
        data = enc.encode(job, max_bytes=1 << 30).encode("utf-8", "surrogatepass")
        return data, tests.total, float(timeout)

    def _run_payload(self, payload: bytes, total: int, timeout: float) -> ExecResult:
        t0 = time.monotonic()
        last_error = ""
        for attempt in (1, 2):
            slot, w = self._pool.acquire()
            try:
                out = w.execute(payload, time.monotonic() + timeout + 15.0)
            except WorkerDied as e:
                self._pool.release(slot, w, broken=True)
                last_error = f"worker {slot} died during the execution ({e})"
                log.warning("%s; attempt %d", last_error, attempt)
                continue
            except WorkerHung as e:
                self._pool.release(slot, w, broken=True)
                return ExecResult(Status.KILLED, 0, total, "WorkerUnresponsive", str(e), "",
                                  time.monotonic() - t0, self._meta(slot, w, attempt))
            except BaseException:
                self._pool.release(slot, w, broken=True)
                raise
            self._pool.release(slot, w)
            meta = self._meta(slot, w, attempt)
            status = Status(out["status"])
            return ExecResult(
                status=status,
                passed=total if status is Status.PASSED else int(out["passed"]),
                total=total,
                error_type=str(out.get("error_type", "")),
                error=str(out.get("error", "")),
                stdout_tail=str(out.get("stdout_tail", "")),
                duration=float(out.get("duration", time.monotonic() - t0)),
                metadata=meta,
            )
        return ExecResult(Status.KILLED, 0, total, "WorkerDied", last_error, "",
                          time.monotonic() - t0, {"backend": self.name, "attempts": 2})


def _close_worker(worker: FramedWorker) -> None:
    worker.close()
