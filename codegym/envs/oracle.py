"""An oracle potential for dense-reward diagnostics: exact prefix correctness by execution.

A learned PRM estimates whether a program prefix can still be completed to a correct
program. On tasks whose reference solution is written one step per line (the ``pipelines``
suite), that question has an exact answer that costs one execution: complete the prefix with
the reference's remaining lines and run the tests. :class:`ReferenceCompletionScorer` is a
:class:`~codegym.envs.scoring.LineScorer` with that answer as its potential, so an RL run can
compare a learned PRM with a perfect one under the same shaping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from codegym.envs.episode import is_neutral_line
from codegym.tasks.base import Task
from sandboxes import Sandbox


class VerdictCache:
    """A bounded, thread-safe map ``(task, lines) -> passed`` shared by several scorers.

    Samples of one task share most of their prefixes, so a shared cache saves most
    executions. The least recently used entries are dropped beyond ``max_entries``.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, str, tuple[str, ...]], bool] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> bool | None:
        """The cached verdict, or None."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, tuple[str, ...]], value: bool) -> None:
        """Store a verdict (dropping the oldest entry when full)."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)


class ReferenceCompletionScorer:
    """Φ(prefix) = ``correct`` if the reference's remaining lines complete the prefix to a
    passing program, else ``wrong``.

    A prefix with ``m`` code lines (comments and blank lines are not counted) is completed
    with ``solution_lines[m:]``. That is exact for "one step per line" references such as
    ``pipelines`` when the agent writes one step per line; a prefix that merges or splits
    steps can be called wrong although another completion exists, so use it as a diagnostic,
    not as ground truth for arbitrary suites.

    Args:
        sandbox: Executes the completed programs (shared; not closed here).
        timeout: Seconds per execution.
        memory_mb: Memory budget per execution.
        correct: Potential of a completable prefix (+1, like a PRM's label).
        wrong: Potential of a prefix the reference cannot complete (−1).
        cache: A :class:`VerdictCache` shared between scorers (a private one when None).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout: float = 5.0,
        memory_mb: int = 512,
        correct: float = 1.0,
        wrong: float = -1.0,
        cache: VerdictCache | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.correct = float(correct)
        self.wrong = float(wrong)
        self.cache = cache if cache is not None else VerdictCache()
        self.task: Task | None = None
        self.lines: list[str] = []

    def __repr__(self) -> str:
        return f"ReferenceCompletionScorer(correct={self.correct}, wrong={self.wrong})"

    def completable(self, task: Task, lines: list[str]) -> bool:
        """Whether ``lines`` + the reference's remaining lines pass ``task``'s tests."""
        key = (task.task_id, task.solution, tuple(lines))
        verdict = self.cache.get(key)
        if verdict is None:
            code_lines = sum(not is_neutral_line(line) for line in lines)
            program = task.program(list(lines) + task.solution_lines[code_lines:])
            result = self.sandbox.run(program, task.tests, timeout=self.timeout, memory_mb=self.memory_mb)
            verdict = result.ok
            self.cache.put(key, verdict)
        return verdict

    def _phi(self) -> float:
        assert self.task is not None
        return self.correct if self.completable(self.task, self.lines) else self.wrong

    def reset(self, task: Task) -> float:
        """Start an episode; Φ(empty) is ``correct`` when the reference itself passes."""
        self.task = task
        self.lines = []
        return self._phi()

    def score(self, line: str) -> float:
        """Append a code line; Φ of the prefix including it."""
        if self.task is None:
            raise RuntimeError("score() before reset(task)")
        self.lines.append(line)
        return self._phi()

    def append(self, line: str) -> None:
        """Append a neutral (comment/blank) line without scoring it."""
        self.lines.append(line)


__all__ = ["ReferenceCompletionScorer", "VerdictCache"]
