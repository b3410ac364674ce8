"""The Ray-backed sandbox pool on a local Ray instance (``ray.init(num_cpus=2)``).

Skipped, with the reason, where Ray is not installed (``pip install 'codegym[ray]'``).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator

import pytest

from sandboxes import IOCase, Job, SandboxUnavailable, Status, TestSuite, make_sandbox

pytestmark = pytest.mark.slow  # starting Ray takes 3-30 s on 2 busy cores

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'codegym[ray]'")

from sandboxes.ray_pool import RaySandboxPool  # noqa: E402

ADD = TestSuite(kind="io", entry_point="add",
                cases=(IOCase((1, 2), 3), IOCase((-4, 4), 0), IOCase(("a", "b"), "ab")))
ADD_CHECK = TestSuite(kind="assert", entry_point="add",
                      check="def check(candidate):\n    assert candidate(2, 3) == 5\n"
                            "    assert candidate('x', 'y') == 'xy'\n")
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return b + a\n"  # right on numbers, wrong on strings


def zygote_pids(parents: set[int]) -> set[int]:
    """Local-sandbox workers (their command line boots sandboxes.worker.main) whose parent is one
    of ``parents`` (other sessions may run sandboxes on the same host at the same time)."""
    pids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if b"sandboxes.worker.main" in cmdline and ppid in parents:
            pids.add(int(name))
    return pids


@pytest.fixture(scope="module")
def ray_pool() -> Iterator[RaySandboxPool]:
    if ray.is_initialized():  # pragma: no cover - another module left Ray running
        ray.shutdown()
    pool = make_sandbox("local", pool="ray", workers=2, ray_init={"num_cpus": 2}, timeout=5.0)
    assert isinstance(pool, RaySandboxPool)
    yield pool
    pool.close()


def test_results_match_the_local_backend(ray_pool: RaySandboxPool) -> None:
    jobs = [Job(GOOD, ADD), Job(WRONG, ADD), Job(GOOD, ADD_CHECK), Job(WRONG, ADD_CHECK),
            Job("def add(a, b):\n    raise ValueError('no')\n", ADD), Job("def add(:\n", ADD)]
    got = ray_pool.run_many(jobs)
    with make_sandbox("local", workers=1) as local:
        want = [local.run(j.program, j.tests) for j in jobs]
    assert [r.status for r in got] == [w.status for w in want]
    assert [r.passed for r in got] == [w.passed for w in want]
    assert [r.status for r in got][:4] == [Status.PASSED, Status.FAILED, Status.PASSED, Status.FAILED]
    assert got[1].passed == 2
    assert all(r.metadata["pool"] == "ray" and r.metadata["backend"] == "local" for r in got)


def test_run_many_spreads_over_actors_and_keeps_order(ray_pool: RaySandboxPool) -> None:
    secrets_ = [secrets.token_hex(8) for _ in range(12)]
    jobs = [Job(f"import time\ndef f():\n    time.sleep(0.2)\n    return {s!r}\n",
                TestSuite(kind="io", entry_point="f", cases=(IOCase((), s),))) for s in secrets_]
    results = ray_pool.run_many(jobs)
    assert all(r.ok for r in results), results  # each result belongs to its own job
    assert {r.metadata["ray_actor"] for r in results} == {0, 1}
    assert len(set(ray_pool.actor_pids())) == 2
    # each actor runs its candidates as its own uid (RLIMIT_NPROC is per uid and host-wide)
    isolation = {r.metadata["ray_actor"]: " ".join(r.metadata["isolation"]) for r in results}
    assert isolation[0] != isolation[1], isolation


def test_limits_still_apply_inside_ray_actors(ray_pool: RaySandboxPool) -> None:
    loop = ray_pool.run("def add(a, b):\n    while True:\n        pass\n", ADD, timeout=1.0)
    assert loop.status is Status.TIMEOUT
    escape = ray_pool.run(
        "def add(a, b):\n    return open('/work/main/pyproject.toml').read()[:1]\n", ADD)
    assert escape.status is not Status.PASSED


def test_a_dead_actor_is_replaced(ray_pool: RaySandboxPool) -> None:
    victim = ray_pool._actors[0]
    ray.kill(victim)
    results = ray_pool.run_many([Job(GOOD, ADD) for _ in range(6)])
    assert all(r.ok for r in results), results
    assert ray_pool._actors[0] is not victim or all(r.metadata["ray_actor"] == 1 for r in results)


def test_close_leaves_no_worker_behind() -> None:
    # num_cpus=0: schedulable beside the module's pool, which holds both CPUs of the instance
    pool = RaySandboxPool("local", actors=2, num_cpus=0, ray_init={"num_cpus": 2})
    try:
        assert all(r.ok for r in pool.run_many([Job(GOOD, ADD) for _ in range(4)]))
        actors = set(pool.actor_pids())
        started = zygote_pids(actors)
        assert started, "the actors' local sandboxes should have started workers"
    finally:
        pool.close()
        pool.close()  # idempotent
    deadline = time.monotonic() + 30
    alive = started
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {p for p in started if os.path.exists(f"/proc/{p}")}
    assert not alive, f"sandbox workers {sorted(alive)} outlived the Ray pool"


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="backend"):
        RaySandboxPool("podman")
    with pytest.raises(ValueError, match="actors"):
        RaySandboxPool("local", actors=0)
    with pytest.raises(ValueError, match="pool"):
        make_sandbox("local", pool="spark")


def test_missing_ray_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(SandboxUnavailable, match="pip install"):
        RaySandboxPool("local", actors=1)
