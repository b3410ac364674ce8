"""Class 4: a job cannot hold more memory than its limit, however it spreads it.

The address-space rlimit binds one process; a job that forks children, fills shared memory or
writes page cache (a ``memfd``, files on its tmpfs) must be bounded as a whole. ``local``: a
memory cgroup per job (cgroup v2, or the v1 memory hierarchy) limited to ``memory_mb`` +
:data:`~sandboxes.worker.cgroups.MARGIN_MB`; ``docker``: the container's own cgroup limit
(``container_memory_mb``). The bound is read from the host, in the kernel's accounting of that
cgroup (its peak usage), and the program's own count of what it managed to hold must stay
under it too.
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
HOG = textwrap.dedent(
    """
    import ctypes, mmap, os, sys, time
    MB = 1 << 20
    def touch(n):
        buf = bytearray(n * MB)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        return buf
    def f(x):
        held = 0
        kids = []
        def alive():  # children still holding their 40 MiB (others were OOM-killed)
            return sum(os.waitpid(p, os.WNOHANG)[0] == 0 for p in kids)
        for _ in range(6):  # children, each under the per-process address-space limit
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    keep = touch(40)
                    os.write(w, b"40")
                    time.sleep(30)
                finally:
                    os._exit(0)
            os.close(w)
            os.read(r, 8)
            kids.append(pid)
            held = 40 * alive()
            print("held", held, flush=True)
        libc = ctypes.CDLL(None, use_errno=True)
        shm = libc.shmget(0, 128 * MB, 0o1600)  # SysV shared memory (refused or bounded)
        print("shmget", shm, flush=True)
        cached = 0
        fds = []
        for _ in range(20):  # page cache: memfds of 8 MiB (the file-size rlimit caps each)
            try:
                fds.append(os.memfd_create("cache"))
                os.write(fds[-1], b"x" * (8 * MB))
                cached += 8
            except OSError:
                break
        print("held", 40 * alive() + cached, flush=True)
        for i in range(60):  # the tmpfs work dir
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


def _suite() -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), "pwned"),))


def _leaves(judge_pid: int) -> list[str]:
    """The memory cgroup leaves of a local worker (under this process's own cgroup)."""
    try:
        version, parent = JobCgroups._choose()
    except CgroupUnavailable:
        return []
    return sorted(glob.glob(os.path.join(parent, f"codegym-{judge_pid}-*", "fs*")))


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


def _container_cgroup(container_id: str) -> str | None:
    for pattern in (f"/sys/fs/cgroup/memory/**/{container_id}*",
                    f"/sys/fs/cgroup/**/docker-{container_id}*.scope",
                    f"/sys/fs/cgroup/**/{container_id}*"):
        hits = [p for p in glob.glob(pattern, recursive=True) if _peak_file(p)]
        if hits:
            return hits[0]
    return None


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    if sandbox_backend == "docker":
        sandbox = make_sandbox_or_skip("docker", workers=1, memory_mb=MEMORY_MB,
                                       container_memory_mb=MEMORY_MB + 160, timeout=10.0)
    else:
        sandbox = make_sandbox_or_skip("local", workers=1, memory_mb=MEMORY_MB, timeout=10.0)
    yield sandbox
    sandbox.close()


def test_a_job_cannot_hold_more_than_its_limit(box: Sandbox, sandbox_backend: str) -> None:
    warm = box.run("def f(x):\n    return 'pwned'\n", _suite())
    assert warm.ok, warm
    if sandbox_backend == "local":
        if any(m.startswith("per-job memory cgroup") for m in warm.metadata["missing_protections"]):
            pytest.skip("no memory cgroup on this host (reported in missing_protections)")
        limit_mb = MEMORY_MB + MARGIN_MB
        groups = _leaves(warm.metadata["worker_pid"])
        assert groups, "the worker's memory cgroup leaves were not found"
    else:
        limit_mb = box.container_memory_mb  # type: ignore[attr-defined]
        group = _container_cgroup(box.container_ids()[0])  # type: ignore[attr-defined]
        if group is None:
            pytest.skip("the container's memory cgroup is not visible from this host")
        groups = [group]
    peaks = [p for p in map(_peak_file, groups) if p]
    for p in peaks:
        _reset_peak(p)
    r = box.run(HOG.replace("LIMIT", str(limit_mb)), _suite(), timeout=10.0)
    assert r.status is not Status.PASSED, r
    held = [int(x) for x in r.stdout_tail.split("held ")[1:] for x in [x.split()[0]]]
    assert held and max(held) <= limit_mb + 8, (held, r.stdout_tail[-300:])
    worst = max(int(open(p).read()) for p in peaks) >> 20
    assert worst <= limit_mb, f"the job's cgroup peaked at {worst} MiB (limit {limit_mb} MiB)"
    assert worst >= 40, f"the hog never got going ({worst} MiB): this test measured nothing"
    ok = box.run("def f(x):\n    return 'pwned'\n", _suite())
    assert ok.ok, ok  # the worker survived its job's OOM kills


def test_an_out_of_memory_kill_is_reported_as_memory(box: Sandbox, sandbox_backend: str) -> None:
    if sandbox_backend != "local":
        pytest.skip("docker: the container's OOM kills are not attributed to one job")
    # page cache is not address space: only the cgroup stops this one
    # page cache is not address space: only the cgroup stops this one (files of 8 MiB each:
    # the file-size rlimit caps one memfd)
    prog = ("import os\ndef f(x):\n    fds = []\n    for _ in range(50):\n"
            "        fds.append(os.memfd_create('c'))\n"
            "        os.write(fds[-1], b'x' * (8 << 20))\n    return 'pwned'\n")
    r = box.run(prog, _suite(), timeout=8.0)
    if any(m.startswith("per-job memory cgroup") for m in r.metadata["missing_protections"]):
        pytest.skip("no memory cgroup on this host")
    assert r.status is Status.MEMORY, r
