"""The ``local`` sandbox backend: warm fork-server workers with namespaces and rlimits.

Each worker ("zygote", see :mod:`sandboxes._zygote`) is a separate single-threaded process
started with ``python -I -S`` (the system Python when present, so the non-root sandbox uid can
read it); the caller is never forked, so it may hold threads (torch). A worker pre-imports the
common standard library and keeps one candidate child prepared; per execution that child gets
its job. Layers (each listed in ``ExecResult.metadata["isolation"]``):

* namespaces, one set per worker, entered before any job: network (no interface up), mount
  (a tmpfs root holding read-only binds of ``/usr`` and the library dirs only, ``pivot_root``
  then ``chroot``: host files are unreachable and candidates cannot create user namespaces),
  pid (the fork server is pid 1 and SIGKILLs every other process of the namespace after each
  job, whatever sessions they made);
* per execution: a new session, a fresh private work dir on a tmpfs, rlimits (address space
  relative to the worker's own size, CPU time, processes, file size, open files, no core
  files), a dedicated non-root uid/gid with no groups (root hosts) or uid 1000 with no
  capabilities in a user namespace (non-root hosts that allow one), ``no_new_privs``, a
  parent-death signal, a clean environment, capped stdout/stderr, a wall-clock timeout;
* a trusted judge in the worker, outside the candidate's process: arguments go in and results
  come back as tagged JSON (:mod:`sandboxes.encoding`, never pickle); expected values and the
  ``check`` code never enter the candidate's process. For ``assert`` suites the judge predicts
  the check's calls and pipelines them (verified call by call; a misprediction reruns the job
  call by call in a fresh child, so verdicts never depend on it).

Where a layer cannot be applied (no root and no user namespaces, or ``namespaces=False``) the
sandbox warns once naming it, lists it in ``metadata["missing_protections"]``, and
``strict=True`` raises :class:`~sandboxes.base.SandboxUnavailable` instead.

Example:
    >>> from sandboxes import make_sandbox, TestSuite, IOCase
    >>> with make_sandbox("local", workers=2) as sb:  # doctest: +SKIP
    ...     r = sb.run("def f(x):\\n    return x + 1\\n",
    ...                TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2),)))
    >>> r.status  # doctest: +SKIP
    <Status.PASSED: 'passed'>
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
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
from sandboxes.pool import WorkerPool

__all__ = ["LocalSandbox", "DEFAULT_UID_BASE", "SYSTEM_PYTHON"]

log = logging.getLogger(__name__)

DEFAULT_UID_BASE = 2_100_000_000  #: worker i runs candidates as uid/gid DEFAULT_UID_BASE + i
#: fork servers per worker: jobs alternate, so one prepares its next child while the other runs
FORK_SERVERS = 2
SYSTEM_PYTHON = "/usr/bin/python3"
_HERE = Path(__file__).resolve().parent
_MODULES = ("sandboxes.encoding", "sandboxes._zygote")
_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()

_BOOT = r"""
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
_pkg = types.ModuleType("sandboxes")
_pkg.__path__ = []
sys.modules["sandboxes"] = _pkg
for _name, _src in _boot["modules"]:
    _m = types.ModuleType(_name)
    _m.__file__ = "<" + _name + ">"
    sys.modules[_name] = _m
    exec(compile(_src, _m.__file__, "exec"), _m.__dict__)
    setattr(_pkg, _name.rsplit(".", 1)[1], _m)
sys.modules["sandboxes._zygote"].main(_boot["config"])
"""


def _module_sources() -> list[list[str]]:
    out = []
    for name in _MODULES:
        path = _HERE / (name.rsplit(".", 1)[1] + ".py")
        out.append([name, path.read_text(encoding="utf-8")])
    return out


def _default_python() -> str:
    """The system Python when it exists (readable by any uid), else this interpreter."""
    if os.path.exists(SYSTEM_PYTHON) and os.access(SYSTEM_PYTHON, os.X_OK):
        return SYSTEM_PYTHON
    return sys.executable


def _default_temp_parent() -> str:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


class _WorkerDied(RuntimeError):
    pass


class _WorkerHung(RuntimeError):
    pass


class _Zygote:
    """Host-side handle of one worker process (framed tagged JSON over its stdin/stdout)."""

    def __init__(self, slot: int, python: str, config: dict[str, Any], start_timeout: float):
        self.slot = slot
        debug = os.environ.get("CODEGYM_SANDBOX_DEBUG") == "1"
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env={"LANG": "C.UTF-8"},
            cwd="/",
            close_fds=True,
            bufsize=0,
        )
        self.lock = threading.Lock()
        boot = json.dumps({"modules": _module_sources(), "config": config}).encode()
        try:
            self._write(len(boot).to_bytes(4, "big") + boot)
            hello = self._read_frame(time.monotonic() + start_timeout)
        except (_WorkerDied, _WorkerHung) as e:
            self.kill()
            raise SandboxUnavailable(
                f"the local sandbox worker ({python} -I -S) failed to start: {e}. "
                "Set CODEGYM_SANDBOX_DEBUG=1 to see its stderr."
            ) from None
        if "fatal" in hello:
            self.kill()
            raise SandboxUnavailable("the local sandbox worker failed to start:\n" + hello["fatal"])
        self.pid: int = self.proc.pid
        self.applied: list[str] = list(hello["applied"])
        self.missing: list[str] = list(hello["missing"])
        self.python_version: str = hello["python"]

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError) as e:
            raise _WorkerDied(f"worker pipe closed ({e})") from None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        while n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _WorkerHung("the worker did not answer in time")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            b = os.read(fd, n)
            if not b:
                raise _WorkerDied("the worker exited")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> dict[str, Any]:
        n = int.from_bytes(self._read_exact(4, deadline), "big")
        return enc.decode(self._read_exact(n, deadline), max_bytes=1 << 30)

    def execute(self, payload: bytes, deadline: float) -> dict[str, Any]:
        self._write(len(payload).to_bytes(4, "big") + payload)
        return self._read_frame(deadline)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self._reap(5.0)

    def close(self) -> None:
        """Graceful stop (the worker kills its candidates), then SIGKILL if needed."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap(0)

    def _reap(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


def _close_worker(worker: _Zygote) -> None:
    worker.close()  # dispatches: subclasses' workers (e.g. containers) close their own way


def _shutdown(pool: WorkerPool[_Zygote], temp_root: list[str], owner_pid: int = -1) -> None:
    if owner_pid not in (-1, os.getpid()):
        return  # a forked copy of the owner: the workers and dirs are not ours to remove
    pool.close()
    for path in temp_root:
        shutil.rmtree(path, ignore_errors=True)


class LocalSandbox(Sandbox):
    """Process-isolation sandbox with a pool of warm fork-server workers.

    Args:
        workers: Parallel workers (each a warm zygote process); ``run_many`` uses all.
        timeout: Default wall-clock limit in seconds per execution (program load + tests).
        memory_mb: Default address-space budget in MiB for the candidate, on top of the
            worker's own size.
        strict: Refuse to run (``SandboxUnavailable``) when any protection layer is missing
            on this host, instead of warning once.
        namespaces: Use network/mount/pid namespaces when running as root (``False`` only for
            hosts where they fail; recorded as missing protections).
        python: Interpreter for the workers (default: ``/usr/bin/python3`` if present).
        uid_base: Candidates of worker ``i`` run as uid/gid ``uid_base + i`` (root only).
        max_procs: ``RLIMIT_NPROC`` for the sandbox uid (processes + threads).
        max_file_mb: ``RLIMIT_FSIZE`` in MiB.
        max_open_files: ``RLIMIT_NOFILE``.
        tmpfs_mb: Size of the private tmpfs work dir in MiB.
        output_tail: Bytes of stdout/stderr kept (the tail) in results.
        output_limit: Total output bytes after which the execution is killed.
        max_result_bytes: Cap on one encoded return value.
        start_timeout: Seconds to wait for a worker to start.
    """

    name = "local"

    def __init__(
        self,
        workers: int = 1,
        *,
        timeout: float = 5.0,
        memory_mb: int = 512,
        strict: bool = False,
        namespaces: bool = True,
        python: str | None = None,
        uid_base: int = DEFAULT_UID_BASE,
        max_procs: int = 64,
        max_file_mb: int = 16,
        max_open_files: int = 256,
        tmpfs_mb: int = 64,
        output_tail: int = 4096,
        output_limit: int = 8 << 20,
        max_result_bytes: int = 8 << 20,
        start_timeout: float = 60.0,
    ) -> None:
        _positive("timeout", timeout)
        _positive_int("memory_mb", memory_mb)
        for name, val in (("max_procs", max_procs), ("max_file_mb", max_file_mb),
                          ("tmpfs_mb", tmpfs_mb), ("output_tail", output_tail),
                          ("output_limit", output_limit), ("max_result_bytes", max_result_bytes)):
            _positive_int(name, val)
        if not isinstance(max_open_files, int) or max_open_files < 16:
            raise ValueError(f"max_open_files must be an int >= 16, got {max_open_files!r}")
        if not isinstance(uid_base, int) or not 1000 <= uid_base < 2**32 - 2 - workers:
            raise ValueError(f"uid_base must be a non-system uid (>= 1000), got {uid_base!r}")
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.strict = bool(strict)
        self.python = python or _default_python()
        if not os.path.exists(self.python):
            raise ValueError(f"python={self.python!r} does not exist; pass an interpreter path")
        self.start_timeout = float(start_timeout)
        self._temp_root: list[str] = []
        needs_temp = not (os.geteuid() == 0 and namespaces)
        if needs_temp:
            self._temp_root.append(tempfile.mkdtemp(prefix="codegym-sbx-",
                                                    dir=_default_temp_parent()))
            os.chmod(self._temp_root[0], 0o711)
        self._config = {
            "namespaces": bool(namespaces),
            "fork_servers": FORK_SERVERS,
            "uid": uid_base,
            "gid": uid_base,
            "max_procs": max_procs,
            "max_file_mb": max_file_mb,
            "max_open_files": max_open_files,
            "tmpfs_mb": tmpfs_mb,
            "tmpfs_inodes": 16384,
            "output_tail": output_tail,
            "output_limit": output_limit,
            "max_result_bytes": max_result_bytes,
            "temp_root": self._temp_root[0] if self._temp_root else None,
        }
        self._workers = workers
        self._make_pool()
        self.missing_protections: list[str] | None = None
        self.applied_protections: list[str] | None = None
        if self.strict:  # fail fast
            slot, w = self._pool.acquire()
            self._pool.release(slot, w)

    def _make_pool(self) -> None:
        self._owner_pid = os.getpid()
        self._pool: WorkerPool[_Zygote] = WorkerPool(self._workers, self._start_worker,
                                                      _close_worker)
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._temp_root,
                                           self._owner_pid)

    def _check_fork(self) -> None:
        """In a forked child (e.g. a multiprocessing vector env) start workers of its own:
        the inherited pipes belong to the parent's workers, which the child must not touch."""
        if os.getpid() != self._owner_pid and type(self) is LocalSandbox:
            self._finalizer.detach()
            if self._temp_root:  # the parent's dir stays the parent's
                self._temp_root = [tempfile.mkdtemp(prefix="codegym-sbx-",
                                                    dir=_default_temp_parent())]
                os.chmod(self._temp_root[0], 0o711)
                self._config = dict(self._config, temp_root=self._temp_root[0])
            self._make_pool()

    @property
    def workers(self) -> int:
        """Number of parallel workers."""
        return self._pool.size

    # -- workers ------------------------------------------------------------------
    def _start_worker(self, slot: int) -> _Zygote:
        cfg = dict(self._config)
        cfg["uid"] = cfg["gid"] = self._config["uid"] + slot
        cfg["slot"] = slot
        z = _Zygote(slot, self.python, cfg, self.start_timeout)
        self.missing_protections = z.missing
        self.applied_protections = z.applied
        if z.missing:
            if self.strict:
                z.kill()
                raise SandboxUnavailable(
                    "LocalSandbox(strict=True): these protections cannot be applied on this "
                    "host: " + "; ".join(z.missing)
                    + ". Run as root (or in a container with CAP_SYS_ADMIN), or pass strict=False."
                )
            key = "|".join(z.missing)
            with _WARN_LOCK:
                first = key not in _WARNED
                _WARNED.add(key)
            if first:
                msg = ("codegym local sandbox runs WITHOUT these protections: "
                       + "; ".join(z.missing) + ". Use strict=True to refuse, or run as root.")
                log.warning(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=4)
        return z

    # -- API ----------------------------------------------------------------------
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
        payload, total, timeout = self._payload(program, tests, timeout, memory_mb)
        return self._run_payload(payload, total, timeout)

    def run_many(self, jobs: Iterable[Job]) -> list[ExecResult]:
        """Run jobs over all workers in parallel; results in input order."""
        self._check_fork()
        jobs = list(jobs)
        check_jobs(jobs)
        prepared = [self._payload(j.program, j.tests, j.timeout, j.memory_mb) for j in jobs]
        return self._pool.map(lambda p: self._run_payload(*p), prepared)

    def close(self) -> None:
        """Stop every worker (their candidates die with them) and remove temp dirs."""
        self._finalizer()

    # -- internals ------------------------------------------------------------------
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
        timeout = self.timeout if timeout is None else timeout
        _positive("timeout", timeout)
        memory_mb = self.memory_mb if memory_mb is None else memory_mb
        _positive_int("memory_mb", memory_mb)
        if tests.kind == "io":
            if not tests.cases:
                raise ValueError("tests.cases is empty: an io suite needs at least one IOCase")
            cases = []
            for i, c in enumerate(tests.cases):
                try:
                    enc.to_jsonable(c.args)
                    enc.to_jsonable(c.expected)
                except (enc.EncodingError, AttributeError) as e:
                    raise ValueError(f"tests.cases[{i}] is not plain data: {e}") from None
                if not isinstance(c.args, tuple):
                    raise ValueError(f"tests.cases[{i}].args must be a tuple, got "
                                     f"{type(c.args).__name__}")
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
        return enc.encode(job, max_bytes=1 << 30).encode(), tests.total, float(timeout)

    def _run_payload(self, payload: bytes, total: int, timeout: float) -> ExecResult:
        t0 = time.monotonic()
        last_error = ""
        for attempt in (1, 2):
            slot, z = self._pool.acquire()
            try:
                out = z.execute(payload, time.monotonic() + timeout + 15.0)
            except _WorkerDied as e:
                self._pool.release(slot, z, broken=True)
                last_error = f"worker {slot} died during the execution ({e})"
                log.warning("%s; attempt %d", last_error, attempt)
                continue
            except _WorkerHung as e:
                self._pool.release(slot, z, broken=True)
                return ExecResult(Status.KILLED, 0, total, "WorkerUnresponsive", str(e), "",
                                  time.monotonic() - t0, self._meta(slot, z, attempt))
            except BaseException:
                self._pool.release(slot, z, broken=True)
                raise
            broken = out.get("error_type") == "HarnessError" and out.get("status") == "killed"
            self._pool.release(slot, z, broken=broken)
            return ExecResult(
                status=Status(out["status"]),
                passed=int(out["passed"]) if out["status"] != "passed" else total,
                total=total,
                error_type=str(out.get("error_type", "")),
                error=str(out.get("error", "")),
                stdout_tail=str(out.get("stdout_tail", "")),
                duration=float(out.get("duration", time.monotonic() - t0)),
                metadata=self._meta(slot, z, attempt),
            )
        return ExecResult(Status.KILLED, 0, total, "WorkerDied", last_error, "",
                          time.monotonic() - t0, {"backend": self.name, "attempts": 2})

    @staticmethod
    def _meta(slot: int, z: _Zygote, attempt: int) -> dict[str, Any]:
        return {
            "backend": "local",
            "worker": slot,
            "worker_pid": z.pid,
            "isolation": list(z.applied),
            "missing_protections": list(z.missing),
            "python": z.python_version,
            "attempts": attempt,
        }


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be an int > 0, got {value!r}")
