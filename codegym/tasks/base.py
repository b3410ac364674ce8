"""The ``Task`` model shared by every suite."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from sandboxes import TestSuite


class SuiteKnobs(Protocol):
    """The knobs of a suite that a :class:`codegym.tasks.SuiteConfig` sets (``None``: the
    suite's default)."""

    min_lines: int | None
    max_lines: int | None
    seed: int | None


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


class TaskSuite(abc.ABC):
    """A collection of tasks with named splits.

    Finite suites (HumanEval, JSONL files) have a size per split; procedural suites
    (``pipelines``) are unlimited (:meth:`size` returns ``None``) and deterministic: the same
    ``(split, index)`` always gives the same task.
    """

    name: str = "abstract"
    #: Whether the number of lines of a task is a knob (:class:`~codegym.tasks.registry.SuiteConfig`
    #: ``min_lines``/``max_lines``); fixed suites (HumanEval, JSONL files) have none.
    supports_horizon: ClassVar[bool] = False
    #: Whether the task stream has a seed (``SuiteConfig.seed``); fixed suites have none.
    supports_seed: ClassVar[bool] = False

    @classmethod
    def config_kwargs(cls, config: SuiteKnobs) -> dict[str, Any]:
        """The constructor arguments that ``config``'s knobs (``min_lines``, ``max_lines``,
        ``seed``) stand for; a suite with knobs overrides it (a fixed suite takes none)."""
        return {}

    @property
    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """Names of the available splits (e.g. ``("train", "validation", "test")``)."""

    @abc.abstractmethod
    def size(self, split: str) -> int | None:
        """Number of tasks in ``split``, or ``None`` when unlimited."""

    @abc.abstractmethod
    def get(self, split: str, index: int) -> Task:
        """The ``index``-th task of ``split`` (deterministic)."""

    def default_split(self) -> str:
        """Split used when none is given (``"test"`` when present, else the first)."""
        return "test" if "test" in self.splits else self.splits[0]

    def check_split(self, split: str) -> str:
        """Return ``split`` or raise ``ValueError`` naming the valid ones."""
        if split not in self.splits:
            raise ValueError(
                f"suite {self.name!r} has no split {split!r}; choose one of {list(self.splits)}"
            )
        return split

    def sample(self, rng: np.random.Generator, split: str | None = None) -> Task:
        """A task drawn with ``rng`` (the caller's generator; no global RNG state)."""
        split = self.check_split(split or self.default_split())
        n = self.size(split)
        index = int(rng.integers(0, n if n is not None else 2**31 - 1))
        return self.get(split, index)

    def take(self, n: int | None = None, split: str | None = None) -> list[Task]:
        """The first ``n`` tasks of ``split`` (all of them when ``n`` is None and finite)."""
        split = self.check_split(split or self.default_split())
        size = self.size(split)
        if n is None:
            if size is None:
                raise ValueError(f"suite {self.name!r} is unlimited: pass n (number of tasks)")
            n = size
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if size is not None:
            n = min(n, size)
        return [self.get(split, i) for i in range(n)]
