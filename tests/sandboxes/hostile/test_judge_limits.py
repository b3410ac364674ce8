"""Class 3: the trusted judge has hard limits of its own.

Replies built to bloat or stall the judge (written straight to its pipe, so the program
holds only their text): 450,000 deques in one answer (each decodes to a 760-byte object), a
7 MB answer to each of 80 io cases, and an object whose view holds tuples nested 150 deep,
each wide, over 900,000 ints (hashing or path-building repeated at every level). Each job must end in a clean verdict of its own that names the
budget (``error``/``JudgeBudget``, or the program's own ``error``), in bounded time, with no
worker restart; and the judge's peak resident memory, read from ``/proc`` (``VmHWM`` of the
real judge process), must stay within its budget plus a margin whatever the replies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, Status, TestSuite

from .test_verdict_spoofing import judge_pid

MEMORY_MB = 64
MARGIN_MB = 96  # the judge's own transient copies of a reply line (rbuf, line, payload)


def _raw(*lines: str) -> str:
    """A program whose answers are reply lines written straight to the judge's pipe (it
    holds only their text, not the objects they decode to), then gone."""
    body = "".join(f"    os.write(4, {line!r}.encode() + b'\\n')\n" for line in lines)
    return f"import os\ndef f(x):\n{body}    os._exit(0)\n"


DEQUE_REPLY = "V[" + '{"q":[[],null]},' * 450_000 + "0]"  # 7 MB: 450,000 deques
NESTED_VIEW = ('V[{"o":["Box",{"d":[["v",' + '{"t":[' * 150 + "0," * 900_000 + "0"
               + "]}" + (",0" * 63 + "]}") * 149 + "]]}]}]")
DEQUES = _raw(DEQUE_REPLY)
DEQUES_TWICE = _raw(DEQUE_REPLY, DEQUE_REPLY)
NESTED = _raw("HBox", NESTED_VIEW)
BIG = "def f(x):\n    return 'x' * 7_000_000\n"
ONE = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 1),))
MANY = TestSuite(kind="io", entry_point="f", cases=tuple(IOCase((i,), i) for i in range(80)))
TWICE = TestSuite(kind="assert", entry_point="f",
                  check="def check(candidate):\n    a = candidate(1)\n    b = candidate(2)\n"
                        "    assert a == b and len(a) == 3\n")
VIEW = TestSuite(kind="assert", entry_point="f",
                 check="def check(candidate):\n    assert candidate(1).v == (1,)\n")
HOSTILE = {"deques_io": (DEQUES, ONE), "deques_kept": (DEQUES_TWICE, TWICE),
           "big_answers_many_cases": (BIG, MANY), "nested_tuple_view": (NESTED, VIEW)}


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, memory_mb=MEMORY_MB,
                                   timeout=10.0)
    yield sandbox
    sandbox.close()


def _hwm_kib(pid: int) -> int:
    """Peak resident memory of a process so far (``VmHWM``), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def _budget_mb(box: Sandbox) -> int:
    """The judge's budget for a job of MEMORY_MB (see Judge._budget)."""
    budget = max(256, 2 * MEMORY_MB)
    container = getattr(box, "container_memory_mb", None)
    return min(budget, max(32, container - MEMORY_MB - 64)) if container else budget


def test_hostile_replies_stay_within_the_judges_budget(box: Sandbox) -> None:
    warm = box.run("def f(x):\n    return x\n", MANY)
    assert warm.ok, warm
    judge = judge_pid(box, warm)
    before = _hwm_kib(judge)
    for name, (program, suite) in HOSTILE.items():
        t0 = time.monotonic()
        r = box.run(program, suite)
        took = time.monotonic() - t0
        assert r.status in (Status.ERROR, Status.FAILED), (name, r)
        assert r.error_type in ("JudgeBudget", "UnviewableResult", "BadResult"), (name, r)
        assert r.metadata.get("attempts") == 1, (name, "the job was retried", r)
        assert judge_pid(box, r) == judge, (name, "the worker was replaced")
        assert took < 10.0 + 5.0, (name, f"{took:.1f} s")
        if name.startswith("deques") or name.startswith("big"):
            assert r.error_type == "JudgeBudget" and "MiB" in r.error, (name, r)
    grown_mb = (_hwm_kib(judge) - before) / 1024
    limit = _budget_mb(box) + MARGIN_MB
    assert grown_mb <= limit, f"the judge's peak RSS grew by {grown_mb:.0f} MiB (limit {limit})"
    assert box.run("def f(x):\n    return x\n", MANY).ok
