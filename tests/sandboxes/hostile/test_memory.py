"""Classes 4 and 4b: a job cannot hold more memory than its limit, however it spreads it.

The address-space rlimit binds one process; a job that forks children, fills kernel buffers
(socket buffers raised with ``SO_SNDBUF``, FIFO buffers raised with ``F_SETPIPE_SZ``) in 16
processes, fills shared memory or writes page cache (files on its tmpfs) must be bounded as a
whole, and on both backends it is charged to *the job*: a memory cgroup leaf per job (cgroup v2,
or the v1 memory hierarchy) limited to ``memory_mb`` + :data:`~sandboxes.worker.cgroups.MARGIN_MB`.
On ``docker`` the leaf lives in a host cgroup made for the container
(:mod:`sandboxes.hostcgroups`), so a job that fills it gets a ``memory`` verdict and the judge
and fork servers beside it keep their room: the same container scores the next job. The bound
is read from the host, in the kernel's accounting of those cgroups (their peak usage), and the
program's own count of what it managed to hold must stay under it too.
"""

from __future__ import annotations

import glob
import os
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, Status, TestSuite
from sandboxes.worker.cgroups import MARGIN_MB, CgroupUnavailable, JobCgroups

MEMORY_MB = 64
LIMIT_MB = MEMORY_MB + MARGIN_MB
CONTAINER_MB = MEMORY_MB + 160

HOG = textwrap.dedent(
    """
    import ctypes, os, time
    MB = 1 << 20
    def touch(n):
        buf = bytearray(n * MB)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        return buf
    def f(x):
        kids = []
        def alive():  # children still holding their 40 MiB (others were OOM-killed)
            return sum(os.waitpid(p, os.WNOHANG)[0] == 0 for p in kids)
        for i in range(6):  # children, each under the per-process address-space limit
            pid = os.fork()
            if pid == 0:
                try:
                    keep = touch(40)
                    open(f"ready{i}", "w").close()
                    time.sleep(30)
                finally:
                    os._exit(0)
            kids.append(pid)
            for _ in range(400):
                if os.path.exists(f"ready{i}") or os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.005)
            print("held", 40 * alive(), flush=True)
        libc = ctypes.CDLL(None, use_errno=True)
        shm = libc.shmget(0, 128 * MB, 0o1600)  # SysV shared memory (refused or bounded)
        print("shmget", shm, flush=True)
        cached = 0
        fds = []
        for _ in range(20):  # memfds (refused or bounded), 8 MiB each (the file-size rlimit)
            try:
                fds.append(os.memfd_create("cache"))
                os.write(fds[-1], b"x" * (8 * MB))
                cached += 8
            except OSError:
                break
        print("held", 40 * alive() + cached, flush=True)
        for i in range(60):  # page cache: the tmpfs work dir
            try:
                with open(f"file{i}", "wb") as fh:
                    fh.write(b"y" * MB)
                cached += 1
            except OSError:
                break
        held = 40 * alive() + cached
        print("held", held, flush=True)
        return "pwned" if held > LIMIT else held
    """
)

# 16 processes fill kernel buffers: AF_UNIX socket buffers raised with SO_SNDBUF (refused in a
# job: no sockets) and, failing that, FIFOs raised to 1 MiB; each also holds some anonymous
# memory. Then the parent holds the most (the OOM killer's choice) and writes page cache.
BUFFERS = textwrap.dedent(
    """
    import fcntl, os, socket, time
    MB = 1 << 20
    def fill_socket():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * MB)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * MB)
        a.setblocking(False)
        n = 0
        try:
            while True:
                n += a.send(b"s" * 65536)
        except BlockingIOError:
            pass
        return (a, b), n
    def fill_fifo(i):
        os.mkfifo(f"fifo{i}")
        fd = os.open(f"fifo{i}", os.O_RDWR | os.O_NONBLOCK)
        try:
            fcntl.fcntl(fd, 1031, MB)  # F_SETPIPE_SZ
        except OSError:
            pass
        n = 0
        try:
            while True:
                n += os.write(fd, b"p" * 65536)
        except BlockingIOError:
            pass
        return fd, n
    def f(x):
        for i in range(16):
            if os.fork() == 0:
                try:
                    try:
                        keep, n = fill_socket()
                    except OSError:
                        keep, n = fill_fifo(i)
                    anon = bytearray(4 * MB)
                    for k in range(0, len(anon), 4096):
                        anon[k] = 1
                    with open(f"held{i}", "w") as fh:
                        fh.write(str(n // MB + 4))
                    time.sleep(30)
                finally:
                    os._exit(0)
        time.sleep(0.5)
        mine = bytearray(44 * MB)  # the biggest process: the OOM killer's choice
        for k in range(0, len(mine), 4096):
            mine[k] = 1
        for i in range(60):
            with open(f"file{i}", "wb") as fh:
                fh.write(b"y" * MB)
        print("survived", flush=True)
        time.sleep(30)
        return "pwned"
    """
)


def _suite() -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), "pwned"),))


def _peak_file(cgroup_dir: str) -> str | None:
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        path = os.path.join(cgroup_dir, name)
        if os.path.exists(path):
            return path
    return None


def _reset_peak(path: str) -> None:
    try:
        with open(path, "w") as f:
            f.write("0")
    except OSError:
        pass  # v2 before 6.12 cannot reset memory.peak: the bound still holds


def _container_parent(box: Sandbox) -> str | None:
    """The host cgroup (memory hierarchy) made for the docker sandbox's one container."""
    made = getattr(box, "host_cgroup_dirs", list)()  # none: the container's cgroup only
    dirs = [d for d in made if os.path.exists(os.path.join(d, "jobs"))]
    return dirs[0] if dirs else None


def _job_leaves(box: Sandbox, backend: str, warm: Any) -> list[str]:
    """The memory cgroup leaves the jobs of the sandbox's one worker run in."""
    if backend == "docker":
        parent = _container_parent(box)
        return sorted(glob.glob(os.path.join(parent, "jobs", "codegym-*", "fs*"))) if parent else []
    try:
        _version, parent = JobCgroups._choose()
    except CgroupUnavailable:
        return []
    pid = warm.metadata["worker_pid"]
    return sorted(glob.glob(os.path.join(parent, f"codegym-{pid}-*", "fs*")))


def _worker_id(r: Any) -> Any:
    return r.metadata.get("container") or r.metadata.get("worker_pid")


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    if sandbox_backend == "docker":
        sandbox = make_sandbox_or_skip("docker", workers=1, memory_mb=MEMORY_MB,
                                       container_memory_mb=CONTAINER_MB, timeout=10.0)
    else:
        sandbox = make_sandbox_or_skip("local", workers=1, memory_mb=MEMORY_MB, timeout=10.0)
    yield sandbox
    sandbox.close()


def _warm_leaves(box: Sandbox, backend: str) -> tuple[Any, list[str]]:
    """A warm first run, and the job leaves' peak files (reset), or a skip with the reason.
    No leaf found is a failure: the job would be charged to nothing of its own."""
    warm = box.run("def f(x):\n    return 'pwned'\n", _suite())
    assert warm.ok, warm
    missing = [m for m in warm.metadata["missing_protections"]
               if m.startswith("per-job memory cgroup")]
    if missing:
        pytest.skip(f"no per-job memory cgroup here: {missing[0]}")
    found = _job_leaves(box, backend, warm)
    peaks = [p for p in map(_peak_file, found) if p]
    for p in peaks:
        _reset_peak(p)
    return warm, peaks


def _check_leaves(peaks: list[str]) -> int:
    """The highest peak of the job leaves, in MiB (both leaves must exist)."""
    assert len(peaks) == 2, f"the worker's two job leaves were not found: {peaks}"
    return max(int(open(p).read()) for p in peaks) >> 20


def test_a_job_cannot_hold_more_than_its_limit(box: Sandbox, sandbox_backend: str) -> None:
    warm, peaks = _warm_leaves(box, sandbox_backend)
    r = box.run(HOG.replace("LIMIT", str(LIMIT_MB)), _suite(), timeout=10.0)
    assert r.status is not Status.PASSED, r
    held = [int(x) for x in r.stdout_tail.split("held ")[1:] for x in [x.split()[0]]]
    assert held and max(held) <= LIMIT_MB + 8, (held, r.stdout_tail[-300:])
    worst = _check_leaves(peaks)
    assert worst <= LIMIT_MB, f"the job's cgroup peaked at {worst} MiB (limit {LIMIT_MB} MiB)"
    assert worst >= 40, f"the hog never got going ({worst} MiB): this test measured nothing"
    ok = box.run("def f(x):\n    return 'pwned'\n", _suite())
    assert ok.ok, ok  # the worker survived its job's OOM kills
    assert _worker_id(ok) == _worker_id(warm), "the worker was replaced"


def test_kernel_buffers_in_many_processes_are_charged_to_the_job(
        box: Sandbox, sandbox_backend: str) -> None:
    """Class 4b: socket/FIFO buffers, children and page cache of one job, on both backends:
    a ``memory`` verdict from the job's own cgroup, its peak under its limit, the container
    (docker) under its own, and the same worker scores the next job."""
    warm, peaks = _warm_leaves(box, sandbox_backend)
    parent = _container_parent(box) if sandbox_backend == "docker" else None
    if parent is not None:
        _reset_peak(os.path.join(parent, "memory.max_usage_in_bytes"))
    r = box.run(BUFFERS, _suite(), timeout=10.0)
    after = [box.run("def f(x):\n    return 'pwned'\n", _suite()) for _ in range(3)]
    assert r.status is Status.MEMORY, r
    assert "survived" not in r.stdout_tail, r.stdout_tail[-300:]
    for ok in after:
        assert ok.ok, ok
        assert _worker_id(ok) == _worker_id(warm), "the worker died under the job"
    worst = _check_leaves(peaks)
    assert 40 <= worst <= LIMIT_MB, f"the job's cgroup peaked at {worst} MiB (limit {LIMIT_MB})"
    if parent is not None:
        container = int(open(os.path.join(parent, "memory.max_usage_in_bytes")).read()) >> 20
        assert container <= CONTAINER_MB, f"the container peaked at {container} MiB"


def test_an_out_of_memory_kill_is_reported_as_memory(box: Sandbox, sandbox_backend: str) -> None:
    """Page cache is not address space: only the job's cgroup stops this one (files of 8 MiB
    each on its tmpfs, the file-size rlimit capping one file, plus memory in the process)."""
    _warm_leaves(box, sandbox_backend)
    prog = ("import os\ndef f(x):\n    held = bytearray(40 << 20)\n"
            "    for k in range(0, len(held), 4096):\n        held[k] = 1\n"
            "    for i in range(8):\n        with open(f'c{i}', 'wb') as fh:\n"
            "            fh.write(b'x' * (8 << 20))\n    return 'pwned'\n")
    r = box.run(prog, _suite(), timeout=8.0)
    assert r.status is Status.MEMORY, r
