"""Class 1: an attacker that may submit many jobs must not learn the expected outputs.

The learner (``attacker/learner.py``) guesses a 24-bit secret bit by bit; it looks inside each
job for evidence of the verdict (does the next call come? does the request pipe close? is it
asked the same call again, as a check that calls it in its assert message would?) and
carries what it knows to the next job through every channel it can find (keyrings, files,
daemons, the pid counter, the time of day). Two controls prove that the learner works and
that the sandbox gives it nothing: with the truth handed to it, it passes; with a perfect
carrier for its own observations, it learns only what it guessed, never the secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, Status, TestSuite

LEARNER = (Path(__file__).parent / "attacker" / "learner.py").read_text()
BITS = 24


def _suites(bits: list[int]) -> dict[str, TestSuite]:
    check = ("def check(candidate):\n"
             f"    for i, bit in enumerate({bits!r}):\n"
             "        assert candidate(i) == bit\n")
    # HumanEval style: the assert message calls the program again (HumanEval/77 and 5 more)
    message = ("def check(candidate):\n"
               f"    for i, bit in enumerate({bits!r}):\n"
               "        assert candidate(i) == bit, f'bit {i}: got {candidate(i)}'\n")
    # the check leaves its prediction (the stand-in is != "go"): its later calls depend on
    # the program's answers, so the job is scored as failed (never run call by call)
    adaptive = ("def check(candidate):\n"
                "    if candidate(-1) != 'go':\n"
                "        return\n"
                f"    for i, bit in enumerate({bits!r}):\n"
                "        assert candidate(i) == bit\n")
    return {
        "assert": TestSuite(kind="assert", entry_point="f", check=check),
        "io": TestSuite(kind="io", entry_point="f",
                        cases=tuple(IOCase((i,), b) for i, b in enumerate(bits))),
        "message": TestSuite(kind="assert", entry_point="f", check=message),
        "adaptive": TestSuite(kind="assert", entry_point="f", check=adaptive),
    }


def _learner(oracle: str = "") -> str:
    return LEARNER.replace('ORACLE = ""', f"ORACLE = {oracle!r}", 1)


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=2.0)
    yield sandbox
    sandbox.close()


def test_the_learner_passes_once_it_knows(box: Sandbox) -> None:
    """Control 1: handed the truth one bit per job (what a verdict leak plus a carrier would
    give it), the learner passes as soon as the bits it does not know are the 0s it guesses."""
    bits = [secrets.randbelow(2) for _ in range(BITS)]
    bits[BITS // 2] = 1
    need = 1 + max(i + 1 for i, b in enumerate(bits) if b)
    suite = _suites(bits)["assert"]
    known = ""
    jobs = 0
    while jobs <= BITS:
        r = box.run(_learner(known), suite)
        jobs += 1
        if r.ok:
            break
        known += str(bits[len(known)])
    assert r.ok and jobs == need, (jobs, need, r)


def test_its_own_observations_carry_no_verdict(box: Sandbox) -> None:
    """Control 2: even a perfect carrier of what the learner observes inside its jobs (here:
    its stdout fed into the next job) teaches it nothing: every call arrives before any
    verdict exists and no pipe closes while it lives, so it "learns" its own guesses."""
    bits = [1] * BITS  # its guesses (0) are all wrong
    for kind in ("assert", "io", "message"):
        suite = _suites(bits)[kind]
        believed = ""
        for _ in range(6):
            r = box.run(_learner(believed), suite, timeout=2.0)
            assert not r.ok, r
            obs = re.findall(r"OBSERVED (.*?): bit (?:\d+ )?is (\d)", r.stdout_tail)
            assert obs, r.stdout_tail
            assert not any("pipe closed" in o for o, _ in obs), obs
            believed += obs[-1][1]
        assert believed == "0" * 6  # what it guessed, not what is true


@pytest.mark.slow
def test_two_hundred_jobs_never_reach_a_pass(box: Sandbox, sandbox_backend: str) -> None:
    """200 consecutive jobs of the learner (io, predicted assert, assert-message and
    answer-dependent assert suites interleaved) against one secret: never a pass, never a
    call asked twice, and nothing it wrote reaches a later job (every job starts knowing
    nothing, as pid 1 with a fresh pid counter)."""
    bits = [secrets.randbelow(2) for _ in range(BITS)]
    suites = _suites(bits)
    program = _learner()
    order = ["io", "assert", "message"] * 60 + ["adaptive"] * 20
    statuses: dict[str, int] = {}
    for i, kind in enumerate(order):
        r = box.run(program, suites[kind], timeout=2.0)
        assert r.status is not Status.PASSED, (i, kind, r)
        statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
        start = re.search(r"START state='([01]*)' first_child_pid=(\d+)", r.stdout_tail)
        assert start is not None, (i, kind, r.stdout_tail[-500:])
        assert start.group(1) == "", f"job {i} started knowing {start.group(1)!r}"
        assert start.group(2) == "2", f"job {i}: the pid counter carried over ({start.group(2)})"
        assert "OBSERVED repeat" not in r.stdout_tail, (i, kind, r.stdout_tail[-500:])
        if kind == "adaptive":
            assert r.error_type == "UnpredictableCheck", r
    assert statuses.get("failed", 0) >= 150, statuses
