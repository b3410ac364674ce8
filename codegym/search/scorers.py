"""Line scorers for search: a PRM, or the exact prefix oracle of ``pipelines``.

A search scores lines in two ways, and a :class:`SearchScorer` offers both:

* :meth:`SearchScorer.score_programs` scores every line of finished programs (best-of-N);
* :meth:`SearchScorer.open_slots` returns a :class:`SlotScorer` that holds one growing
  program per slot, scores the line each slot appends, and copies slots as a beam search
  keeps some beams and drops others (:meth:`SlotScorer.select`).

Scores are on the label scale [−1, 1]; neutral lines (comments, blank lines) get ``None``.

:class:`PRMScorer` reads a :class:`~codegym.prm.ProcessRewardModel`: full encoding for
finished programs (:func:`codegym.prm.scoring.score_programs`), one shared KV cache for the
slots (:class:`codegym.prm.scoring.BatchedPRMScorer`). A line that would exceed the PRM's
positions is not scored (``None``) and the slot reports itself full.

:class:`OracleScorer` is the ceiling: the score of a prefix is +1 when the reference's
remaining lines complete it to a passing program, else −1
(:class:`codegym.envs.oracle.ReferenceCompletionScorer`), and the last scored line of a
*finished* program scores its own verdict (+1 when the program passes its tests): once a
program is submitted, the only completion left is the empty one. Ranking finished programs
by ``last`` with the oracle therefore picks a passing one whenever there is one. Every
execution runs in the given sandbox and is counted for the program or slot it scores (:class:`Scores`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from codegym.envs.episode import is_neutral_line
from codegym.envs.oracle import ReferenceCompletionScorer
from codegym.tasks.base import Task
from codegym.tasks.timing import time_limit

if TYPE_CHECKING:
    from codegym.prm.model import ProcessRewardModel


class Scores(NamedTuple):
    """Scores with what they cost.

    Attributes:
        scores: One entry per program (its line scores) or per slot (the new line's score);
            ``None`` for a neutral line, a slot given no line, or a line not scored.
        executions: Sandbox runs per entry (0 for a PRM).
        full: Per slot: it could not take its line (neither appended nor scored); empty for
            finished programs.
    """

    scores: list[Any]
    executions: list[int]
    full: list[bool]


class SlotScorer(Protocol):
    """One growing program per slot (see the module docstring)."""

    def score_lines(self, lines: Sequence[str | None]) -> Scores:
        """Append ``lines[b]`` to slot ``b`` (``None``: nothing) and score each new line."""
        ...

    def submit_scores(self, slots: Sequence[int]) -> Scores:
        """The score of ending each given slot's program now, one entry per slot (``None``:
        the scorer has none; the program keeps its last line's score)."""
        ...

    def select(self, index: Sequence[int]) -> None:
        """Make slot ``i`` a copy of slot ``index[i]``."""
        ...


class SearchScorer(Protocol):
    """Scores lines for a search (see the module docstring)."""

    name: str

    def score_programs(self, tasks: Sequence[Task], programs: Sequence[Sequence[str]]) -> Scores:
        """Every line's score of each finished program (``programs[i]`` solves ``tasks[i]``)."""
        ...

    def open_slots(self, tasks: Sequence[Task]) -> SlotScorer:
        """One empty program per entry of ``tasks``."""
        ...


# ------------------------------------------------------------------------------ PRM
class PRMScorer:
    """A :class:`SearchScorer` backed by a PRM.

    Args:
        prm: A :class:`~codegym.prm.ProcessRewardModel` or its checkpoint directory.
        device: Torch device when ``prm`` is a directory.
        batch_size: Programs per forward in :meth:`score_programs`.
    """

    name = "prm"

    def __init__(self, prm: ProcessRewardModel | str | Path, device: str = "cpu", batch_size: int = 32) -> None:
        from codegym.prm.model import ProcessRewardModel

        if isinstance(prm, (str, Path)):
            prm = ProcessRewardModel.from_pretrained(prm, device=device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.prm = prm.eval()
        self.batch_size = int(batch_size)

    def _fitting(self, context: str, lines: Sequence[str]) -> int:
        """How many leading lines of a program fit in the PRM's positions."""
        from codegym.lm import max_positions
        from codegym.tokenization import encode_context, encode_lines

        room = max_positions(self.prm.backbone.config) - len(encode_context(self.prm.tokenizer, context))
        for m, piece in enumerate(encode_lines(self.prm.tokenizer, list(lines))):
            room -= len(piece)
            if room < 0:
                return m
        return len(lines)

    def score_programs(self, tasks: Sequence[Task], programs: Sequence[Sequence[str]]) -> Scores:
        """Every line's PRM score by full encoding; lines past the PRM's positions get ``None``."""
        from codegym.prm.scoring import score_programs
        from codegym.tokenization import task_context

        if len(tasks) != len(programs):
            raise ValueError(f"got {len(tasks)} tasks for {len(programs)} programs")
        contexts = [task_context(t) for t in tasks]
        kept = [list(p)[: self._fitting(c, p)] for c, p in zip(contexts, programs)]
        arrays = score_programs(self.prm, contexts, kept, batch_size=self.batch_size)
        scores = [
            [None if j >= len(k) or is_neutral_line(line) else float(a[j]) for j, line in enumerate(p)]
            for p, k, a in zip(programs, kept, arrays)
        ]  # fmt: skip
        return Scores(scores, [0] * len(programs), [])

    def open_slots(self, tasks: Sequence[Task]) -> _PRMSlots:
        """Slots over one shared KV cache (:class:`~codegym.prm.scoring.BatchedPRMScorer`)."""
        from codegym.prm.scoring import BatchedPRMScorer
        from codegym.tokenization import task_context

        scorer = BatchedPRMScorer(self.prm, len(tasks))
        for b, task in enumerate(tasks):
            scorer.reset_context(b, task_context(task))
        return _PRMSlots(scorer)


class _PRMSlots:
    """:class:`SlotScorer` of :class:`PRMScorer`."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def score_lines(self, lines: Sequence[str | None]) -> Scores:
        full = self.scorer.overflows(lines)
        feed = [None if f else line for line, f in zip(lines, full)]
        scored = [line is not None and not is_neutral_line(line) for line in feed]
        return Scores(self.scorer.score_lines(feed, scored), [0] * len(lines), full)

    def submit_scores(self, slots: Sequence[int]) -> Scores:
        return Scores([None] * len(slots), [0] * len(slots), [])

    def select(self, index: Sequence[int]) -> None:
        self.scorer.select_slots(index)


# ---------------------------------------------------------------------------- oracle
class _CountingSandbox:
    """Passes ``run`` on to a sandbox and counts each run under the key that the calling
    thread set last (:meth:`count_as`)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.total = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def count_as(self, counts: Counter[int], key: int) -> None:
        self._local.target = (counts, key)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        counts, key = getattr(self._local, "target", (Counter(), 0))
        with self._lock:
            counts[key] += 1
            self.total += 1
        return self.sandbox.run(*args, **kwargs)


class OracleScorer:
    """A :class:`SearchScorer` with exact answers by execution (see the module docstring).

    Args:
        sandbox: Runs the programs (shared; not closed here).
        timeout: Seconds per execution (a task's calibrated limit when larger).
        memory_mb: Memory budget per execution.
        prefixes: Score every line's prefix in :meth:`score_programs` (False: only the last
            line, the program's verdict, which is all ``last`` ranks by: far fewer runs).
        workers: Threads that run executions side by side.
    """

    name = "oracle"

    def __init__(self, sandbox: Any, *, timeout: float = 5.0, memory_mb: int = 512, prefixes: bool = True,
                 workers: int = 2) -> None:  # fmt: skip
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._box = _CountingSandbox(sandbox)
        self.reference = ReferenceCompletionScorer(self._box, timeout=timeout, memory_mb=memory_mb)  # type: ignore[arg-type]
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.prefixes = bool(prefixes)
        self._verdicts: dict[tuple[str, str, tuple[str, ...]], bool] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="oracle")

    def close(self) -> None:
        """Stop the threads (the sandbox stays open)."""
        self._pool.shutdown(wait=True)

    def completable(self, task: Task, lines: Sequence[str]) -> float:
        """+1 if the reference completes ``lines`` to a passing program, else −1."""
        return 1.0 if self.reference.completable(task, list(lines)) else -1.0

    def verdict(self, task: Task, lines: Sequence[str]) -> float:
        """+1 if the finished program ``lines`` passes ``task``'s tests, else −1."""
        key = (task.task_id, task.solution, tuple(lines))
        with self._lock:
            known = self._verdicts.get(key)
        if known is None:
            result = self._box.run(task.program(list(lines)), task.tests,
                                                     timeout=time_limit(task, self.timeout), memory_mb=self.memory_mb)  # fmt: skip
            known = bool(result.ok)
            with self._lock:
                self._verdicts[key] = known
        return 1.0 if known else -1.0

    @property
    def executions(self) -> int:
        """Sandbox runs so far (cached answers cost none)."""
        return self._box.total

    def _map(self, jobs: list[tuple[Any, Task, Sequence[str]]], owners: list[int], n: int) -> tuple[list[float], list[int]]:
        """Run ``jobs`` (``(fn, task, lines)``) in the threads; returns their scores and the
        executions of each of ``n`` entries (job ``i`` belongs to entry ``owners[i]``)."""
        counts: Counter[int] = Counter()

        def call(job: tuple[Any, Task, Sequence[str]], owner: int) -> float:
            self._box.count_as(counts, owner)
            return float(job[0](job[1], job[2]))

        scores = list(self._pool.map(call, jobs, owners))
        return scores, [counts[i] for i in range(n)]

    def score_programs(self, tasks: Sequence[Task], programs: Sequence[Sequence[str]]) -> Scores:
        """Prefix completability per code line (with ``prefixes``); the last code line
        scores the program's verdict."""
        if len(tasks) != len(programs):
            raise ValueError(f"got {len(tasks)} tasks for {len(programs)} programs")
        out: list[list[float | None]] = [[None] * len(p) for p in programs]
        where, jobs = [], []
        for i, (task, program) in enumerate(zip(tasks, programs)):
            code = [j for j, line in enumerate(program) if not is_neutral_line(line)]
            for j in code if self.prefixes else code[-1:]:
                last = j == code[-1]
                where.append((i, j))
                jobs.append((self.verdict if last else self.completable, task, list(program[: j + 1])))
        scores, runs = self._map(jobs, [i for i, _ in where], len(programs))
        for (i, j), score in zip(where, scores):
            out[i][j] = score
        return Scores(out, runs, [])

    def open_slots(self, tasks: Sequence[Task]) -> _OracleSlots:
        """One program per slot, each new code line scored by prefix completability."""
        return _OracleSlots(self, list(tasks))


class _OracleSlots:
    """:class:`SlotScorer` of :class:`OracleScorer`."""

    def __init__(self, oracle: OracleScorer, tasks: list[Task]) -> None:
        self.oracle = oracle
        self.tasks = tasks
        self.lines: list[list[str]] = [[] for _ in tasks]

    def score_lines(self, lines: Sequence[str | None]) -> Scores:
        if len(lines) != len(self.tasks):
            raise ValueError(f"lines needs {len(self.tasks)} entries, got {len(lines)}")
        jobs, slots = [], []
        for b, line in enumerate(lines):
            if line is None:
                continue
            self.lines[b].append(line)
            if not is_neutral_line(line):
                slots.append(b)
                jobs.append((self.oracle.completable, self.tasks[b], list(self.lines[b])))
        out: list[float | None] = [None] * len(lines)
        scores, runs = self.oracle._map(jobs, slots, len(lines))
        for b, score in zip(slots, scores):
            out[b] = score
        return Scores(out, runs, [False] * len(lines))

    def submit_scores(self, slots: Sequence[int]) -> Scores:
        jobs = [(self.oracle.verdict, self.tasks[b], list(self.lines[b])) for b in slots]
        scores, runs = self.oracle._map(jobs, list(range(len(slots))), len(slots))
        return Scores(list(scores), runs, [])

    def select(self, index: Sequence[int]) -> None:
        rows = [int(i) for i in index]
        if not rows or min(rows) < 0 or max(rows) >= len(self.tasks):
            raise ValueError(f"index must name slots in [0, {len(self.tasks)}), got {rows[:8]}")
        self.tasks = [self.tasks[i] for i in rows]
        self.lines = [list(self.lines[i]) for i in rows]


__all__ = ["OracleScorer", "PRMScorer", "Scores", "SearchScorer", "SlotScorer"]
