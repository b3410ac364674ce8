"""The ``Task`` model shared by every suite."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandboxes import TestSuite


@dataclass(frozen=True)
class Task:
    """One programming task.

    What the agent reads (``prompt``) and the code the program starts with (``code_prefix``)
    are separate: for HumanEval and ``pipelines`` the prefix is the signature + docstring and
    the agent writes the body; for MBPP/APPS-style tasks the prompt is prose, the prefix is
    empty and the agent writes the whole function.

    Attributes:
        task_id: Unique id within its suite (e.g. ``"HumanEval/0"``, ``"pipelines/test/17"``).
        prompt: Text shown to the agent.
        code_prefix: Code that precedes the agent's lines in the executed program. Taken as
            it is (``\\r\\n`` line ends, tabs and helper functions included).
        entry_point: Name of the function the tests call.
        tests: Trusted tests (:class:`sandboxes.TestSuite`).
        solution: Reference solution: the lines an agent should write after ``code_prefix``,
            joined by ``"\\n"`` (no trailing newline).
        metadata: Suite-specific facts, e.g. ``{"suite": "pipelines", "split": "test",
            "steps": 5}``.
    """

    task_id: str
    prompt: str
    code_prefix: str
    entry_point: str
    tests: TestSuite
    solution: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def solution_lines(self) -> list[str]:
        """The reference solution as a list of lines (one env step each)."""
        return self.solution.split("\n") if self.solution else []

    @property
    def horizon(self) -> int:
        """Number of lines of the reference solution."""
        return len(self.solution_lines)

    def program(self, lines: list[str] | tuple[str, ...]) -> str:
        """The full program executed for ``lines`` written after the code prefix."""
        prefix = self.code_prefix
        if prefix and not prefix.endswith("\n"):
            prefix += "\n"
        body = "\n".join(lines)
        return prefix + body + ("\n" if body else "")
