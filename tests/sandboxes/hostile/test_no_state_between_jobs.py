"""Classes 1, 2 and 5: nothing a job can touch survives it; no host keys; no shared uid.

* state that outlives a job is a carrier for anything a job learns: the pid counter, the work
  dir's inode counter, kernel keyrings, processes under a shared uid;
* the judge's behaviour while the candidate lives must not depend on the verdict: every call
  arrives before any answer is judged, and no pipe closes before the candidate is dead;
* a process limit shared through a uid must not let one job starve the next.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import IOCase, Job, Sandbox, Status, TestSuite

X86 = platform.machine() == "x86_64"


def _io(expected: Any, *args: Any) -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase(tuple(args), expected),))


def _value(box: Sandbox, program: str, **kw: Any) -> Any:
    """What ``f(0)`` returned (read back from a wrong-answer verdict)."""
    r = box.run(program, _io("\0never", 0), **kw)
    assert r.status is Status.FAILED and " got " in r.error, r
    return eval(r.error.rsplit(" got ", 1)[1])  # noqa: S307 - our own repr of plain data


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1)
    yield sandbox
    sandbox.close()


PIDS = textwrap.dedent(
    """
    import os
    def f(x):
        kids = []
        for _ in range(x):
            p = os.fork()
            if p == 0:
                os._exit(0)
            os.waitpid(p, 0)
            kids.append(p)
        p = os.fork()
        if p == 0:
            os._exit(0)
        os.waitpid(p, 0)
        return [os.getpid(), p]
    """
)


def test_each_job_has_a_fresh_pid_namespace(box: Sandbox) -> None:
    """A job that forks many processes leaves no trace in the next job's pids (it could
    count them to signal a number to it otherwise)."""
    burn = PIDS.replace("def f(x):", "def f(x):\n    x = 60")
    for _ in range(4):  # both fork servers, several times
        assert _value(box, burn) == [1, 62]
        assert _value(box, PIDS) == [1, 2]


INODES = textwrap.dedent(
    """
    import os
    def f(x):
        for i in range(x):
            open(f"burn{i}", "w").close()
        with open("probe", "w") as fh:
            pass
        return [os.stat("probe").st_ino, os.getcwd(), sorted(os.listdir("."))[:3]]
    """
)


def test_each_job_has_a_fresh_work_dir(box: Sandbox) -> None:
    """The work dir is a new tmpfs per job: no file, and not even its inode counter (which
    a job could advance to signal a number), reaches the next job."""
    fresh = _value(box, INODES)
    for _ in range(3):
        ino, cwd, listing = _value(box, INODES.replace("def f(x):", "def f(x):\n    x = 150"))
        assert ino > fresh[0] and len(listing) == 3
        assert _value(box, INODES) == fresh
    assert fresh[2] == ["probe"]


KEYS = textwrap.dedent(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def f(x):
        out = []
        for ring in (-4, -3, -5):  # user, session, user-session
            k = libc.syscall(248, b"user", b"cg-key", b"v", ctypes.c_long(1), ctypes.c_long(ring))
            out.append([k, ctypes.get_errno()])
        k = libc.syscall(250, 22, ctypes.c_long(-1), ctypes.c_long(-3))  # get persistent
        out.append([k, ctypes.get_errno()])
        k = libc.syscall(249, b"user", b"cg-host-secret", None, ctypes.c_long(0))  # request_key
        out.append([k, ctypes.get_errno()])
        k = libc.syscall(250, 10, ctypes.c_long(-3), b"user", b"cg-host-secret", ctypes.c_long(0))
        out.append([k, ctypes.get_errno()])  # search the session keyring
        out.append(os.path.exists("/proc/keys"))
        return out
    """
)
KEYS_DENIED = [[-1, 1]] * 6 + [False]


@pytest.mark.skipif(not X86, reason="the syscall numbers in this program are x86_64's")
def test_keyrings_cannot_be_used(box: Sandbox) -> None:
    """Kernel keyrings are not namespaced: keys outlive jobs (and sandboxes) and a process can
    find the host's. Candidates get EPERM for every keyring call."""
    for _ in range(2):
        assert _value(box, KEYS) == KEYS_DENIED


_HOST_KEY_SCRIPT = """
import ctypes, json, sys
sys.path.insert(0, {root!r})
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall(250, 1, None)  # a session keyring of our own, then a secret in it
key = libc.syscall(248, b"user", b"cg-host-secret", b"hunter2", ctypes.c_long(7), ctypes.c_long(-3))
assert key > 0, ctypes.get_errno()
from sandboxes import IOCase, TestSuite, make_sandbox
with make_sandbox({backend!r}, workers=1) as box:
    r = box.run({program!r}, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), None),)))
print(json.dumps(r.error))
"""


@pytest.mark.skipif(not X86, reason="the syscall numbers in this program are x86_64's")
def test_host_session_keys_are_unreachable(sandbox_backend: str) -> None:
    """Class 2: a host process with a secret in its session keyring starts a sandbox; the
    candidate cannot find or read it (keyrings are refused, and the fork servers joined a
    fresh session keyring)."""
    root = str(Path(__file__).resolve().parents[3])
    script = _HOST_KEY_SCRIPT.format(root=root, backend=sandbox_backend, program=KEYS)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = eval(proc.stdout.strip().splitlines()[-1]).rsplit(" got ", 1)[1]  # noqa: S307
    assert eval(got) == KEYS_DENIED  # noqa: S307 - our own repr of plain data


WATCH = textwrap.dedent(
    """
    import os, select, sys, threading, time
    seen = []
    def watch():
        p = select.poll()
        p.register(3, select.POLLHUP)
        while True:
            if p.poll(5):
                print("HANGUP", flush=True)
                return
    threading.Thread(target=watch, daemon=True).start()
    def f(x):
        seen.append(x)
        print("CALL", x, flush=True)
        if x == 2:
            time.sleep(0.3)  # hold the last answer back: does the judge hang up meanwhile?
        return GUESS
    """
)


@pytest.mark.parametrize("kind", ["assert", "io"])
def test_the_candidate_sees_the_same_judge_whatever_its_answers(box: Sandbox, kind: str) -> None:
    """What the candidate can observe of the judge while it lives (which calls come, whether
    the request pipe closes) is the same for a right and a wrong first answer."""
    if kind == "assert":
        suite = TestSuite(kind="assert", entry_point="f", check=(
            "def check(candidate):\n    assert candidate(0) == 7\n"
            "    assert candidate(1) == 7\n    assert candidate(2) == 7\n"))
    else:
        suite = TestSuite(kind="io", entry_point="f",
                          cases=tuple(IOCase((i,), 7) for i in range(3)))
    seen = {}
    for guess in (7, 8):
        r = box.run(WATCH.replace("GUESS", str(guess)), suite, timeout=3.0)
        assert r.ok is (guess == 7), r
        seen[guess] = r.stdout_tail.split()
    assert seen[7] == seen[8] == ["CALL", "0", "CALL", "1", "CALL", "2"], seen


THREADS = textwrap.dedent(
    """
    import threading
    def f(x):
        ts = [threading.Thread(target=lambda: None) for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return len(ts)
    """
)
HOG = textwrap.dedent(
    """
    import os, time
    def f(x):
        n = 0
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
            except OSError:
                return n
    """
)


def test_a_process_hog_does_not_starve_the_next_job(sandbox_factory: Any) -> None:
    """Class 5: a job that leaves as many sleeping processes as its limit allows must not
    make the next job -- in the same sandbox or in another one with the same settings -- fail
    to start threads (its leftovers are killed before its verdict, and no two fork servers
    on the host share a uid)."""
    a = sandbox_factory(workers=1, max_procs=24)
    b = sandbox_factory(workers=1, max_procs=24)
    for _ in range(3):
        hog = a.run(HOG, _io(-1, 0), timeout=2.0)
        assert hog.status in (Status.FAILED, Status.TIMEOUT), hog
        results = a.run_many([Job(THREADS, _io(20, 0))] * 2) + [b.run(THREADS, _io(20, 0))]
        assert all(r.ok for r in results), results
    if sandbox_factory.backend == "local" and os.geteuid() == 0:
        ua, ub = set(a.sandbox_uids()), set(b.sandbox_uids())
        assert len(ua) == 2 and len(ub) == 2 and not ua & ub, (ua, ub)
