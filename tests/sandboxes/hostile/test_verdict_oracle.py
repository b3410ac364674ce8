"""Class 1: no judge mode lets the calls a program is asked reveal a verdict.

HumanEval/77 (``iscube``) calls the program again inside its assert messages
(``assert candidate(1) == True, "First test error: " + str(candidate(1))``): a judge that
evaluated such a check by asking a running program call by call let it see, from the call
that came next, whether its last answer held. The learner (``attacker/message_learner.py``)
reads that from the order, the number and the timing of its calls, and the test carries what
it observed into the next job (a perfect carrier between jobs). It must never pass, never see
a call twice, and end up believing only its own guesses. A control hands it the truth and
shows that it passes as soon as it knows.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegym.tasks.base import Task
from sandboxes import Sandbox, Status

LEARNER = (Path(__file__).parent / "attacker" / "message_learner.py").read_text()
JOBS = 12


@pytest.fixture(scope="module")
def iscube() -> Task:
    from codegym.tasks.humaneval import HumanEvalSuite

    task = HumanEvalSuite().by_id("HumanEval/77")
    assert "str(candidate(" in task.tests.check  # the check calls it in its messages
    return task


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=2.0)
    yield sandbox
    sandbox.close()


def _learner(task: Task, known: dict[Any, bool]) -> str:
    return (LEARNER.replace("KNOWN = {}", f"KNOWN = {known!r}", 1)
            .replace("def ENTRY(", f"def {task.entry_point}(", 1))


def _truth(task: Task) -> dict[int, bool]:
    """The right answer to every argument the check uses (from the reference, run here)."""
    ns: dict[str, Any] = {}
    exec(task.program(task.solution_lines), ns)  # noqa: S102 - the benchmark's own solution
    calls = [n for n in ast.walk(ast.parse(task.tests.check))
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "candidate"]
    args = {ast.literal_eval(c.args[0]) for c in calls}
    return {a: ns[task.entry_point](a) for a in args}


def test_the_learner_passes_once_it_knows(box: Sandbox, iscube: Task) -> None:
    """Control: handed the answers (what a verdict oracle plus a carrier would give it), the
    learner passes the real task."""
    r = box.run(_learner(iscube, _truth(iscube)), iscube.tests)
    assert r.ok, r
    r = box.run(_learner(iscube, {}), iscube.tests)
    assert r.status is Status.FAILED and "First test error: False" in r.error, r


def test_assert_messages_teach_nothing_across_jobs(box: Sandbox, iscube: Task) -> None:
    known: dict[Any, bool] = {}
    seen: set[str] = set()
    counts: set[int] = set()
    for job in range(JOBS):
        r = box.run(_learner(iscube, known), iscube.tests)
        assert not r.ok, f"job {job}: a pass learned from the calls, knowing {known}: {r}"
        calls = [int(n) for n in re.findall(r"CALLS (\d+)", r.stdout_tail)]
        assert calls, r.stdout_tail
        for how, arg, value in re.findall(r"OBSERVED (\w+) (.*?) -> (True|False)",
                                          r.stdout_tail):
            seen.add(how)
            known[ast.literal_eval(arg)] = value == "True"
        assert r.status is Status.FAILED and r.error_type == "WrongAnswer", r
        counts.add(max(calls))
    assert counts == {8}, f"the number of calls depended on the answers: {counts}"
    assert "repeat" not in seen, "a call came twice: the message of a failed assert reached it"
    assert known and not any(known.values()), f"it learned more than its guesses: {known}"
