"""N executions through a sandbox pool leave no process, container, cgroup or temp dir behind.

N is 1,000 by default (``CODEGYM_LEAK_N`` overrides it; ``bench/sandbox_throughput.py
--leak-check 10000`` runs the full count). The jobs mix passing, failing and crashing programs
with leak-prone ones (daemonised grandchildren, children in their own process group, lingering
threads, files in the work dir, timeouts); every process they start is named with one marker,
so the host-wide check finds stragglers wherever they were reparented.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from hostile.hostcheck import (  # type: ignore[import-not-found]
    HostGuard,
    HostView,
    all_procs,
    descendants,
    new_secret,
    suite_for,
    with_prelude,
)

from sandboxes import Job, Sandbox, Status

N = int(os.environ.get("CODEGYM_LEAK_N", "1000"))
WORKERS = 2

# name -> (source with {value!r} for the expected return value, expected status)
PROGRAMS: dict[str, tuple[str, Status]] = {
    "correct": ("def f():\n    return {value!r}\n", Status.PASSED),
    "wrong": ("def f():\n    return 'wrong'\n", Status.FAILED),
    "raises": ("def f():\n    raise ValueError('boom')\n", Status.ERROR),
    "files": (
        "import os\ndef f():\n    os.makedirs('d/e', exist_ok=True)\n"
        "    open('d/e/x.txt', 'w').write('x' * 4096)\n    return {value!r}\n",
        Status.PASSED,
    ),
    "child": (
        "import os\ndef f():\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n    return {value!r}\n",
        Status.PASSED,
    ),
    "daemon": (
        "import os, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(60)\n        os._exit(0)\n"
        "    os.wait()\n    return {value!r}\n",
        Status.PASSED,
    ),
    "pgroup": (
        "import os, signal, time\ndef f():\n    if os.fork() == 0:\n        os.setpgid(0, 0)\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n        time.sleep(60)\n"
        "        os._exit(0)\n    return {value!r}\n",
        Status.PASSED,
    ),
    "thread": (
        "import threading, time\ndef f():\n    threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "    return {value!r}\n",
        Status.PASSED,
    ),
    "timeout": ("def f():\n    while True:\n        pass\n", Status.TIMEOUT),
}


def leak_jobs(n: int, token: str, rng_seed: int = 0) -> tuple[list[Job], list[Status]]:
    """``n`` jobs: mostly quick ones, every 50th leak-prone, every 250th a timeout."""
    import random

    rng = random.Random(rng_seed)
    quick = ["correct", "wrong", "raises", "files", "child"]
    leaky = ["daemon", "pgroup", "thread"]
    ctx = {"comm": f"cgl{token}", "token": token}
    jobs, want = [], []
    for i in range(n):
        if i % 250 == 249:
            name = "timeout"
        elif i % 50 == 25:
            name = leaky[(i // 50) % len(leaky)]
        else:
            name = rng.choice(quick)
        source, status = PROGRAMS[name]
        value = new_secret()
        jobs.append(Job(with_prelude(ctx, source.format(value=value)), suite_for("io", value),
                        timeout=0.5 if name == "timeout" else 10.0))
        want.append(status)
    return jobs, want


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private TMPDIR for the sandbox under test: any entry left in it is a leak."""
    path = tempfile.mkdtemp(prefix="cgl-tmp-")
    os.chmod(path, 0o755)
    monkeypatch.setenv("TMPDIR", path)
    monkeypatch.setattr(tempfile, "tempdir", None)
    # The local backend puts its temp roots (when it needs any) in /dev/shm, shared with every
    # other sandbox on the host: point it at the private dir so the check below is exact.
    monkeypatch.setattr("sandboxes.local._default_temp_parent", lambda: path, raising=False)
    yield path
    try:
        os.rmdir(path)
    except OSError:
        pass


def sandbox_uids(sandbox: Sandbox) -> set[int]:
    """Host uids the backend's candidates run as (local: the uids its fork servers claimed)."""
    if sandbox.name == "local":
        return set(sandbox.sandbox_uids()) - {os.getuid()}  # type: ignore[attr-defined]
    from sandboxes.docker import CONTAINER_UID

    return {CONTAINER_UID}


def cgroup_leaves(sandbox: Sandbox) -> list[str]:
    """The cgroup dirs made for a sandbox: a local sandbox's workers' memory leaves, a docker
    sandbox's host cgroup per container (all removed when they exit)."""
    import glob

    from sandboxes.worker.cgroups import CgroupUnavailable, JobCgroups

    if sandbox.name == "docker":
        return sandbox.host_cgroup_dirs()  # type: ignore[attr-defined]
    if sandbox.name != "local":
        return []
    try:
        _, parent = JobCgroups._choose()
    except CgroupUnavailable:
        return []
    pids = [w.pid for w in sandbox._pool.workers()]  # type: ignore[attr-defined]
    return [d for pid in pids for d in glob.glob(os.path.join(parent, f"codegym-{pid}-*"))]


def test_many_executions_leave_nothing_behind(
    sandbox_factory: Callable[..., Sandbox], private_tmp: str
) -> None:
    backend = sandbox_factory.backend  # type: ignore[attr-defined]
    me = os.getpid()
    tree_before = {(p.pid, p.starttime) for p in descendants(me, all_procs())}
    shm_before = set(os.listdir("/dev/shm"))
    sandbox = sandbox_factory(workers=WORKERS)
    containers: Callable[[], dict[str, str]] = dict
    if backend == "docker":
        from hostile.conftest import docker_containers_of  # type: ignore[import-not-found]

        def containers() -> dict[str, str]:
            return docker_containers_of(sandbox)

    token = secrets.token_hex(6)
    jobs, want = leak_jobs(N, token)
    warm = sandbox.run_many(jobs[:2])  # start the workers before the snapshot
    uids = sandbox_uids(sandbox)
    leaves = cgroup_leaves(sandbox)
    view = HostView(sandbox_uids=uids, temp_dirs=[private_tmp],
                    containers=containers, max_containers=WORKERS if backend == "docker" else 0)
    guard = HostGuard(view, markers=[f"cgl{token}", token], forbidden_paths=())
    results = warm + sandbox.run_many(jobs[2:])

    got = [r.status for r in results]
    wrong = [(i, w.value, r.status.value, r.error[:80]) for i, (w, r) in enumerate(zip(want, results))
             if r.status is not w]
    assert not wrong, f"{len(wrong)}/{N} executions got the wrong status, e.g. {wrong[:5]}"
    assert got.count(Status.PASSED) > N // 2

    problems = guard.problems()
    assert not problems, f"after {N} executions (pool still open):\n  " + "\n  ".join(problems[:20])

    sandbox.close()
    deadline = time.monotonic() + 15
    while True:
        new = [p for p in descendants(me, all_procs())
               if (p.pid, p.starttime) not in tree_before and p.comm != "ray::IDLE"]
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not new, "processes left after close: " + "; ".join(p.describe() for p in new)
    left_tmp = os.listdir(private_tmp)
    assert not left_tmp, f"temp entries left after close: {left_tmp}"
    left_cgroups = [d for d in leaves if os.path.exists(d)]
    assert not left_cgroups, f"memory cgroups left after close: {left_cgroups}"
    left_shm = [n for n in set(os.listdir("/dev/shm")) - shm_before
                if n.startswith("codegym") and os.path.exists(f"/dev/shm/{n}")
                and os.stat(f"/dev/shm/{n}").st_uid in uids]
    assert not left_shm, f"/dev/shm entries left after close: {left_shm}"
    assert not containers(), f"containers left after close: {containers()}"
