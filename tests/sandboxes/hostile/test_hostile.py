"""The hostile suite: every program in ``programs/`` on every backend.

Each case asserts (1) a non-pass verdict, with the statuses the attack calls for (a timeout for a
CPU loop, a memory status for a memory bomb, ...), (2) containment: no process of the run left
anywhere on the host, no file created outside the sandbox, no host file modified, no temp entry
or container left, no contact with the test's loopback/Unix servers, a concurrent victim job
unharmed, and (3) that the same sandbox then still scores a correct program as a pass.
"""

from __future__ import annotations

import os

import pytest

from sandboxes import Status

from .cases import CASES, HELPERS, PROGRAMS, HostileCase, case_id
from .conftest import HostileEnv, run_hostile


def test_catalogue_has_at_least_30_distinct_programs() -> None:
    names = {c.name for c in CASES}
    files = {p.stem for p in PROGRAMS.glob("*.py")} - HELPERS
    assert len(names) >= 30
    assert names == files, f"programs without a case: {files - names}; cases without a program: {names - files}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_program_is_contained(case: HostileCase, hostile_env: HostileEnv) -> None:
    env = hostile_env
    env.require(case)
    result, victim, problems = run_hostile(env, case)
    where = f"[{env.backend}] {case_id(case)}"
    assert result.status is not Status.PASSED, f"{where}: a hostile program was scored a pass: {result}"
    assert result.passed == 0, f"{where}: the harness counted a passed test: {result}"
    assert result.status in case.statuses, (
        f"{where}: status {result.status.value!r} not in "
        f"{sorted(s.value for s in case.statuses)}: {result}")
    assert len(result.stdout_tail) <= 1 << 20, f"{where}: stdout_tail not capped ({len(result.stdout_tail)} chars)"
    assert not problems, f"{where}: the host changed:\n  " + "\n  ".join(problems)
    if victim is not None:
        assert victim.ok, f"{where}: a concurrent job was harmed by the attack: {victim}"
    canary = env.canary()
    assert canary.ok, f"{where}: the sandbox no longer scores a correct program after the attack: {canary}"


def test_timeout_statuses_come_with_bounded_duration(hostile_env: HostileEnv) -> None:
    """Containment in time: a CPU loop that ignores every signal is stopped near its timeout
    (a loose bound: this checks that the kill happens at all, not speed)."""
    case = next(c for c in CASES if c.name == "ignore_signals")
    result, _, problems = run_hostile(hostile_env, case)
    assert result.status is Status.TIMEOUT, result
    assert result.duration < case.timeout + 10, f"not stopped near its timeout: {result.duration:.1f}s"
    assert not problems, problems


def test_probe_sees_an_unprivileged_candidate(hostile_env: HostileEnv) -> None:
    """From the host, a candidate process is neither root nor a child of the test process."""
    probe = hostile_env.probe
    assert probe is not None, "the probe program could not be observed in /proc"
    assert probe.uid != 0, f"candidate runs as host root: {probe.describe()}"
    assert probe.ppid != os.getpid(), f"candidate is a direct child of the test: {probe.describe()}"
