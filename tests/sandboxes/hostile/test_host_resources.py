"""Class 4: a job cannot exhaust host-wide kernel resources, and it ends when its time is up.

* AIO events are a host-wide pool (``fs.aio-max-nr``): a job that claimed them all made the
  host's own ``io_setup`` fail. Linux AIO is refused to jobs (``ENOSYS``), io_uring too.
* Block I/O: a job's files are an in-memory copy and its work dir a tmpfs, so it has no path
  to a block device at all (no host file to read, with or without ``O_DIRECT``). Checked from
  the host in the kernel's per-process I/O accounting (``/proc/<pid>/io``).
* Wall time: from the call until every process of the job is reaped, a job takes at most its
  timeout plus :data:`BOUND`, whatever it does (CPU in many processes with signals ignored,
  memory churn at its limit, a full tmpfs, ``sync``, AIO in flight). The bound is for
  correctness, not speed: the judge kills the job at its deadline and the fork server waits
  until the job's PID namespace is empty; what remains is process teardown (freeing up to
  ``memory_mb`` in up to ``max_procs`` processes) and scheduling on a loaded host. Measured
  here (2 cores, load average 5): at most 0.3 s over the timeout; 1.5 s leaves five times
  that, and is still below what a job that could hold its own kill back (uninterruptible
  I/O in flight, ~2 s reported) would take.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, Status, TestSuite

from .hostcheck import all_procs, marked

BOUND = 1.5
TIMEOUT = 1.5
X86 = os.uname().machine == "x86_64"

MARK_PRELUDE = textwrap.dedent(
    """
    import ctypes, os
    ctypes.CDLL(None).prctl(15, MARK, 0, 0, 0)
    """
)


def _io(expected: Any) -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), expected),))


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=10.0, memory_mb=64,
                                   **({"container_memory_mb": 224}
                                      if sandbox_backend == "docker" else {}))
    yield sandbox
    sandbox.close()


def _marked_pids(mark: str) -> list[int]:
    return [p.pid for p in marked(all_procs(), [mark]) if p.comm == mark]


def _while_running(box: Sandbox, program: str, mark: str, look: Any, timeout: float = 10.0,
                   expected: Any = "never") -> tuple[Any, Any]:
    """Run ``program`` (which names its processes ``mark``); call ``look(pids)`` from the host
    once they show up; return (result, what ``look`` returned)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(box.run(program, _io(expected),
                                                                timeout=timeout)), daemon=True)
    thread.start()
    seen: Any = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        pids = _marked_pids(mark)
        if pids:
            seen = look(pids)
            break
        time.sleep(0.02)
    thread.join(timeout + 20)
    assert out, "the job did not come back"
    return out[0], seen


# --------------------------------------------------------------------------- AIO

AIO_HOG = MARK_PRELUDE + textwrap.dedent(
    """
    import time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def f(x):
        claimed, errors = 0, set()
        ctxs = []
        for _ in range(64):
            ctx = ctypes.c_ulong(0)
            if libc.syscall(ctypes.c_long(206), ctypes.c_long(4096), ctypes.byref(ctx)) == 0:
                ctxs.append(ctx)
                claimed += 4096
            else:
                errors.add(ctypes.get_errno())
                break
        ring = libc.syscall(ctypes.c_long(425), ctypes.c_long(8), ctypes.create_string_buffer(120))
        print("AIO", claimed, sorted(errors), ring, ctypes.get_errno(), flush=True)
        time.sleep(2.0)
        return claimed
    """
)


def _host_io_setup() -> int:
    """errno of the host's own ``io_setup(1)`` (0: it worked; the context is destroyed)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ctx = ctypes.c_ulong(0)
    if libc.syscall(ctypes.c_long(206), ctypes.c_long(1), ctypes.byref(ctx)) != 0:
        return ctypes.get_errno()
    libc.syscall(ctypes.c_long(207), ctx)
    return 0


@pytest.mark.skipif(not X86, reason="the syscall numbers in this program are x86_64's")
def test_aio_events_stay_the_hosts(box: Sandbox) -> None:
    mark = "cgaio" + secrets.token_hex(4)
    program = AIO_HOG.replace("MARK", repr(mark.encode()))

    def look(pids: list[int]) -> tuple[int, int]:
        time.sleep(0.7)  # the job has claimed what it could
        return _host_io_setup(), int(Path("/proc/sys/fs/aio-nr").read_text())

    r, seen = _while_running(box, program, mark, look)
    assert r.status is Status.FAILED, r
    claimed = int(r.stdout_tail.split("AIO ", 1)[1].split()[0])
    assert claimed == 0, f"the job claimed {claimed} host AIO events: {r.stdout_tail[-200:]}"
    assert "[38]" in r.stdout_tail and " -1 1" in r.stdout_tail, r.stdout_tail  # ENOSYS, EPERM
    assert seen is not None and seen[0] == 0, f"the host's io_setup failed meanwhile: {seen}"


# --------------------------------------------------------------------------- block I/O

READER = MARK_PRELUDE + textwrap.dedent(
    """
    import mmap, time
    def f(x):
        buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT wants
        total, direct, end = 0, 0, time.monotonic() + 2.0
        while time.monotonic() < end:
            for d, _subdirs, names in os.walk("/"):
                if d.startswith(("/tmp", "/dev", "/proc", "/sys")):
                    continue
                for n in names:
                    p = os.path.join(d, n)
                    for flags in (os.O_DIRECT, 0):
                        try:
                            fd = os.open(p, os.O_RDONLY | flags)
                        except OSError:
                            continue
                        try:
                            while time.monotonic() < end:
                                k = os.readv(fd, [buf])
                                if k <= 0:
                                    break
                                total += k
                                direct += k if flags else 0
                        except OSError:
                            pass
                        finally:
                            os.close(fd)
                    if time.monotonic() >= end:
                        break
        print("READ", total, direct, flush=True)
        time.sleep(1.0)
        return total
    """
)


def _io_counters(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


def test_a_job_reads_nothing_from_a_block_device(box: Sandbox) -> None:
    """The job reads every file it can reach for 2 s (``O_DIRECT`` too); the kernel's
    accounting of its process shows no byte fetched from storage."""
    mark = "cgbio" + secrets.token_hex(4)
    program = READER.replace("MARK", repr(mark.encode()))

    def look(pids: list[int]) -> dict[str, int]:
        time.sleep(2.5)  # reading is over; the job sleeps before its answer
        return _io_counters(pids[0])

    r, seen = _while_running(box, program, mark, look)
    assert "READ" in r.stdout_tail, r
    total = int(r.stdout_tail.split("READ ", 1)[1].split()[0])
    assert total > 10 << 20, f"the reader read only {total} bytes: this test measured nothing"
    assert seen is not None, "the job's process was not seen from the host"
    assert seen["read_bytes"] < 1 << 20, f"the job read from storage: {seen}"
    assert seen["write_bytes"] < 1 << 20, f"the job wrote to storage: {seen}"


# --------------------------------------------------------------------------- wall time

JOBS = {
    "signals ignored, 8 spinning processes": """
        import signal
        def f(x):
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
                signal.signal(s, signal.SIG_IGN)
            for _ in range(7):
                if os.fork() == 0:
                    break
            while True:
                pass
    """,
    "memory churn at the limit in 16 processes": """
        def f(x):
            for _ in range(15):
                if os.fork() == 0:
                    break
            while True:
                try:
                    b = bytearray(24 << 20)
                    for k in range(0, len(b), 4096):
                        b[k] = 1
                except MemoryError:
                    pass
    """,
    "a full tmpfs, written again and again": """
        def f(x):
            while True:
                for i in range(80):
                    try:
                        with open(f"big{i}", "wb") as fh:
                            fh.write(b"z" * (1 << 20))
                            os.fsync(fh.fileno())
                    except OSError:
                        pass
                for i in range(80):
                    try:
                        os.unlink(f"big{i}")
                    except OSError:
                        pass
    """,
    "sync() and AIO in a loop": """
        import mmap
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def f(x):
            ctx = ctypes.c_ulong(0)
            libc.syscall(ctypes.c_long(206), ctypes.c_long(128), ctypes.byref(ctx))
            buf = mmap.mmap(-1, 1 << 20)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            files = []
            for d, _s, names in os.walk("/usr"):
                files += [os.path.join(d, n) for n in names]
            fds = []
            for p in files[:64]:
                try:
                    fds.append(os.open(p, os.O_RDONLY | os.O_DIRECT))
                except OSError:
                    pass
            while True:
                libc.sync()
                for fd in fds:  # IOCB_CMD_PREAD of 1 MiB from each (where AIO exists)
                    cb = (ctypes.c_uint64 * 8)(0, 0, fd << 32, addr, 1 << 20, 0, 0, 0)
                    ptrs = (ctypes.c_void_p * 1)(ctypes.addressof(cb))
                    libc.syscall(ctypes.c_long(209), ctx, ctypes.c_long(1), ptrs)
    """,
}


@pytest.mark.parametrize("name", list(JOBS))
def test_a_job_is_reaped_within_its_timeout_and_a_bound(box: Sandbox, name: str) -> None:
    mark = "cgwall" + secrets.token_hex(4)
    program = MARK_PRELUDE.replace("MARK", repr(mark.encode())) + textwrap.dedent(JOBS[name])
    t0 = time.monotonic()
    r = box.run(program, _io(None), timeout=TIMEOUT)
    took = time.monotonic() - t0
    left = _marked_pids(mark)
    assert r.status in (Status.TIMEOUT, Status.MEMORY, Status.KILLED), r
    assert not left, f"processes of the job still exist when its verdict is back: {left}"
    assert took <= TIMEOUT + BOUND, f"{name}: {took:.2f} s from the call to reaped " \
                                    f"(timeout {TIMEOUT} s + bound {BOUND} s)"
    ok = box.run("def f(x):\n    return 1\n", _io(1))
    assert ok.ok, ok
