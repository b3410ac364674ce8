"""The ``local`` sandbox backend: warm worker processes with namespaces, cgroups and seccomp.

Each worker is a separate single-threaded process started with ``python -I -S`` (the system
Python when present, so the non-root sandbox uid can read it) running :mod:`sandboxes.worker`:
a trusted judge and two fork servers. The caller is never forked, so it may hold threads
(torch). What a job gets (each layer is listed in ``ExecResult.metadata["isolation"]``):

* its own PID namespace (the candidate is its pid 1: it sees no other process, its pid counter
  starts afresh, and everything it starts dies with it), a fresh tmpfs work dir, the fork
  server's network (no interface up), IPC, UTS, time and mount namespaces, a private
  read-only root made of an in-memory copy of the interpreter, its standard library and the
  libraries they load (:mod:`sandboxes.worker.sysroot`: no file of the host's disks is
  reachable or mapped, so nothing a job does to the page cache outlives it; no ``/proc``,
  read-only ``/dev`` nodes);
* a memory cgroup (cgroup v2, or the v1 memory hierarchy where that is what the host has):
  all of the job's processes, kernel buffers, page cache and shared memory together stay under
  ``memory_mb`` + 32 MiB; rlimits (address space, CPU, processes, file size, open files);
* a sandbox uid of its fork server's alone (root hosts) or no capabilities in a user namespace
  (other hosts), ``no_new_privs``, a seccomp filter (no keyrings, namespaces, mounts, inotify,
  io_uring, AIO, SysV IPC, sockets, pipes, memfds, pidfds, page-cache probes, host facts such
  as ``sysinfo``, tracing; see :mod:`sandboxes.worker.syscalls`), a clean environment, capped
  output;
* a trusted judge outside the candidate's process that sends every call up front, collects
  every answer, kills the candidate's tree and only then judges (see
  :mod:`sandboxes.worker.judge`).

Where a layer cannot be applied (no root and no user namespaces, no memory cgroup,
``namespaces=False``) the sandbox warns once naming it, lists it in
``metadata["missing_protections"]``, and ``strict=True`` raises
:class:`~sandboxes.base.SandboxUnavailable` instead.

Example:
    >>> from sandboxes import make_sandbox, TestSuite, IOCase
    >>> with make_sandbox("local", workers=2) as sb:  # doctest: +SKIP
    ...     r = sb.run("def f(x):\\n    return x + 1\\n",
    ...                TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2),)))
    >>> r.status  # doctest: +SKIP
    <Status.PASSED: 'passed'>
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any

from sandboxes.base import SandboxUnavailable
from sandboxes.limits import Limits
from sandboxes.pooled import (
    BOOT,
    FramedWorker,
    PooledSandbox,
    WorkerDied,
    WorkerHung,
    boot_message,
    read_fd,
)

__all__ = ["LocalSandbox", "DEFAULT_UID_BASE", "SYSTEM_PYTHON"]

#: candidates of fork server ``i`` of a worker run as the ``i``-th free uid from here up (root)
DEFAULT_UID_BASE = 2_100_000_000
#: fork servers per worker: jobs alternate, so one prepares its next child while the other runs
FORK_SERVERS = 2
SYSTEM_PYTHON = "/usr/bin/python3"


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


class _ProcessWorker(FramedWorker):
    """Host-side handle of one worker process (frames over its stdin/stdout)."""

    def __init__(self, slot: int, python: str, config: dict[str, Any],
                 start_timeout: float) -> None:
        self.slot = slot
        debug = os.environ.get("CODEGYM_SANDBOX_DEBUG") == "1"
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-c", BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env={"LANG": "C.UTF-8"},
            cwd="/",
            close_fds=True,
            bufsize=0,
        )
        self.lock = threading.Lock()
        self.pid = self.proc.pid
        try:
            hello = self._hello(boot_message(config), start_timeout)
        except (WorkerDied, WorkerHung) as e:
            self.kill()
            raise SandboxUnavailable(
                f"the local sandbox worker ({python} -I -S) failed to start: {e}. "
                "Set CODEGYM_SANDBOX_DEBUG=1 to see its stderr."
            ) from None
        if "fatal" in hello:
            self.kill()
            raise SandboxUnavailable("the local sandbox worker failed to start:\n" + hello["fatal"])

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError) as e:
            raise WorkerDied(f"worker pipe closed ({e})") from None

    def _read_some(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        return read_fd(self.proc.stdout.fileno(), n, deadline)

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


class LocalSandbox(PooledSandbox):
    """Process-isolation sandbox with a pool of warm worker processes.

    Args:
        workers: Parallel workers (each a judge with two fork servers); ``run_many`` uses all.
        timeout: Default wall-clock limit in seconds per execution (program load + tests).
        memory_mb: Default memory budget in MiB (see :class:`~sandboxes.limits.Limits`).
        strict: Refuse to run (``SandboxUnavailable``) when any protection layer is missing
            on this host, instead of warning once.
        namespaces: Use namespaces (``False`` only for hosts where they fail; recorded as
            missing protections).
        python: Interpreter for the workers (default: ``/usr/bin/python3`` if present).
        uid_base: Root hosts: each fork server claims the first uid from here up that no
            other live sandbox on the host holds; its candidates run as that uid.
        max_procs: ``RLIMIT_NPROC`` for a job (processes + threads).
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
        limits = Limits(timeout=timeout, memory_mb=memory_mb, max_procs=max_procs,
                        max_file_mb=max_file_mb, max_open_files=max_open_files,
                        tmpfs_mb=tmpfs_mb, output_tail=output_tail, output_limit=output_limit,
                        max_result_bytes=max_result_bytes)
        if isinstance(uid_base, bool) or not isinstance(uid_base, int) or not (
                1000 <= uid_base < 2**32 - 70000):
            raise ValueError(f"uid_base must be a non-system uid (>= 1000), got {uid_base!r}")
        self.python = python or _default_python()
        if not os.path.exists(self.python):
            raise ValueError(f"python={self.python!r} does not exist; pass an interpreter path")
        self.start_timeout = float(start_timeout)
        self.namespaces = bool(namespaces)
        self.uid_base = uid_base
        self._temp_root: list[str] = []
        super().__init__(workers, limits, strict)
        self._new_temp_root()
        if self.strict:  # fail fast
            slot, w = self._pool.acquire()
            self._pool.release(slot, w)

    def _new_temp_root(self) -> None:
        """Hosts where the fork servers cannot mount their own tmpfs need a host temp dir."""
        self._temp_root = []
        if not (os.geteuid() == 0 and self.namespaces):
            path = tempfile.mkdtemp(prefix="codegym-sbx-", dir=_default_temp_parent())
            os.chmod(path, 0o711)
            self._temp_root.append(path)
            self._cleanups.append(lambda p=path: shutil.rmtree(p, ignore_errors=True))

    def _forked(self) -> None:
        self._temp_root = []  # the parent's dir stays the parent's

    def _check_fork(self) -> None:
        if os.getpid() != self._owner_pid:
            super()._check_fork()
            self._new_temp_root()

    def _strict_hint(self) -> str:
        return "Run as root (or in a container with CAP_SYS_ADMIN), or pass strict=False."

    def _config(self, slot: int) -> dict[str, Any]:
        cfg = self.limits.worker_config()
        cfg.update(namespaces=self.namespaces, fork_servers=FORK_SERVERS, uid=self.uid_base,
                   slot=slot, temp_root=self._temp_root[0] if self._temp_root else None)
        return cfg

    def sandbox_uids(self) -> list[int]:
        """Host uids the live workers' candidates run as (root hosts; empty elsewhere)."""
        return sorted(u for w in self._pool.workers() for u in w.uids)

    def _start_worker(self, slot: int) -> _ProcessWorker:
        return _ProcessWorker(slot, self.python, self._config(slot), self.start_timeout)
