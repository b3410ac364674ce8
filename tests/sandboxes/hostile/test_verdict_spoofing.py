"""Class 7: a program cannot choose its verdict's category, and a broken worker is replaced.

* ``memory`` comes from the kernel's accounting only (an OOM kill counted by the job's memory
  cgroup): a wrong program that raises ``MemoryError``, or prints it and then dies, is an
  ``error``/``killed`` job of its own, never ``memory``;
* a fork server that died (killed from the host between jobs) makes its worker report that
  it cannot go on, and the pool starts a new worker and runs the job again: no job after it
  gets a judge error.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxes import ExecResult, IOCase, Sandbox, Status, TestSuite

from .hostcheck import read_proc

SUITE = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2), IOCase((2,), 3)))
CHECK = TestSuite(kind="assert", entry_point="f",
                  check="def check(candidate):\n    assert candidate(1) == 2\n")
GOOD = "def f(x):\n    return x + 1\n"

SPOOFS = {
    "raise_in_call": "def f(x):\n    raise MemoryError('Cannot allocate memory')\n",
    "raise_at_load": "raise MemoryError\ndef f(x):\n    return 0\n",
    "print_then_sigkill": "import os, sys\ndef f(x):\n"
                          "    print('MemoryError: Cannot allocate memory', flush=True)\n"
                          "    sys.stderr.write('MemoryError\\n'); sys.stderr.flush()\n"
                          "    os.kill(os.getpid(), 9)\n",
    "print_then_abort": "import os\ndef f(x):\n"
                        "    print('Cannot allocate memory', flush=True)\n    os.abort()\n",
    "report_in_reply": "import os\ndef f(x):\n    os.write(4, b'E' + b'MemoryError 00\\n')\n"
                       "    os.kill(os.getpid(), 9)\n",
}


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=3.0)
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("name", sorted(SPOOFS))
def test_program_output_cannot_claim_a_memory_verdict(box: Sandbox, name: str) -> None:
    for suite in (SUITE, CHECK):
        r = box.run(SPOOFS[name], suite)
        assert r.status in (Status.ERROR, Status.KILLED, Status.FAILED), (name, r)
    assert box.run(GOOD, SUITE).ok


# --------------------------------------------------------------------------- fork servers


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None and info.ppid == pid:
                out.append(info.pid)
    return out


def judge_pid(box: Sandbox, r: ExecResult) -> int:
    """Host pid of the judge that ran ``r`` (the worker process, or the container's)."""
    if "worker_pid" in r.metadata:
        return int(r.metadata["worker_pid"])
    from sandboxes.docker import engine_client

    cid = next(c for c in box.container_ids() if c.startswith(r.metadata["container"]))  # type: ignore[attr-defined]
    client = engine_client()
    try:
        pid = int(client.containers.get(cid).attrs["State"]["Pid"])
    finally:
        client.close()
    todo = [pid]
    while todo:  # the judge names itself codegym-judge
        p = todo.pop()
        info = read_proc(p)
        if info is not None and info.comm == "codegym-judge":
            return p
        todo.extend(_children(p))
    raise AssertionError(f"no judge process under the container's pid {pid}")


def fork_servers(judge: int) -> list[int]:
    return [p for p in _children(judge)
            if (info := read_proc(p)) is not None and info.comm == "codegym-sbx"]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return ""


def _worker(r: ExecResult) -> Any:
    return r.metadata.get("worker_pid") or r.metadata.get("container")


def test_a_dead_fork_server_restarts_the_worker(box: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("killing the sandbox's fork servers needs root (they run as root)")
    first = box.run(GOOD, SUITE)
    assert first.ok, first
    judge = judge_pid(box, first)
    servers = fork_servers(judge)
    assert len(servers) == 2, f"fork servers of judge {judge}: {servers}"
    os.kill(servers[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _state(servers[0]) not in ("", "Z"):  # dead (a zombie until its judge reaps it)
        assert time.monotonic() < deadline, "the killed fork server is still running"
        time.sleep(0.01)
    results = [box.run(GOOD, suite) for suite in (SUITE, CHECK) * 3]
    assert all(r.ok for r in results), [(r.status, r.error_type, r.error[:200]) for r in results]
    assert any(r.metadata["attempts"] == 2 for r in results), [r.metadata for r in results]
    assert _worker(results[-1]) != _worker(first), "the worker with a dead fork server stayed"
    after = fork_servers(judge_pid(box, results[-1]))
    assert len(after) == 2 and not set(after) & set(servers), (servers, after)


# the child holds 48 MiB and writes files into the work dir until its job's cgroup kills it
CHILD_OOM = ("import os\ndef f(x):\n    pid = os.fork()\n    if pid == 0:\n"
             "        held = bytearray(48 << 20)\n"
             "        for k in range(0, len(held), 4096):\n            held[k] = 1\n"
             "        for i in range(8):\n            with open(f'c{i}', 'wb') as fh:\n"
             "                fh.write(b'x' * (8 << 20))\n        os._exit(0)\n"
             "    os.waitpid(pid, 0)\n    return x + 1\n")


def test_an_oom_kill_is_charged_to_its_own_job_only(box: Sandbox,
                                                     sandbox_backend: str) -> None:
    """A job whose child was OOM-killed (counted by the cgroup) but that answered right
    passes; the next job of the same fork server, merely wrong, is `failed`, not `memory`."""
    first = box.run(CHILD_OOM, SUITE, memory_mb=64)
    if any(m.startswith("per-job memory cgroup") for m in first.metadata["missing_protections"]):
        pytest.skip("no memory cgroup on this host")
    assert first.ok, first
    for _ in range(2):  # both fork servers
        r = box.run("def f(x):\n    return x\n", SUITE)
        assert r.status is Status.FAILED and r.error_type == "WrongAnswer", r
    oom = box.run(CHILD_OOM.replace("return x + 1", "return x"), SUITE, memory_mb=64)
    assert oom.status is Status.MEMORY and oom.error_type == "MemoryLimit", oom
