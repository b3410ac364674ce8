"""The dense-reward hook: any object that scores lines can drive the env's dense reward.

:class:`LineScorer` scores one program (the single env); :class:`BatchedLineScorer` scores
the programs of every slot of a vector env at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from codegym.tasks.base import Task


@runtime_checkable
class LineScorer(Protocol):
    """Scores a program line by line within one episode (a PRM plugs in here).

    The scorer is stateful per episode: :meth:`reset` starts a new program for ``task``;
    each :meth:`score` appends one line and returns the potential Φ of the program so far
    (for a PRM: its score read at the last token of that line). Implementations may keep a
    KV cache between calls, so lines must be given in order, each exactly once.
    """

    def reset(self, task: Task) -> float:
        """Start an episode; returns Φ of the empty program (0.0 if undefined)."""
        ...

    def score(self, line: str) -> float:
        """Append ``line`` (no newline) and return Φ of the program including it."""
        ...


def feed_line(scorer: LineScorer, line: str, scored: bool) -> float | None:
    """Give ``line`` to ``scorer``: its score when ``scored``; otherwise (a neutral line) the
    scorer's program only grows by it (``append``, when the scorer has one) and ``None``."""
    if scored:
        return float(scorer.score(line))
    append = getattr(scorer, "append", None)
    if append is not None:
        append(line)
    return None


@runtime_checkable
class BatchedLineScorer(Protocol):
    """Scores the lines of ``num_slots`` programs at once (the vector env's dense reward).

    Slot ``b`` follows :class:`LineScorer`'s contract for its own program: :meth:`reset`
    starts it, and :meth:`score_lines` appends one line per slot that writes one.
    :class:`codegym.prm.BatchedPRMScorer` scores every slot's line in one PRM forward;
    :class:`PerSlotScorers` runs one :class:`LineScorer` per slot.
    """

    num_slots: int

    def reset(self, tasks: Mapping[int, Task]) -> dict[int, float]:
        """Start a program of ``tasks[b]`` in each slot ``b`` given; Φ of each empty program."""
        ...

    def score_lines(self, lines: Sequence[str | None], scored: Sequence[bool]) -> list[float | None]:
        """Append ``lines[b]`` to slot ``b`` (``None``: the slot writes nothing) and return its
        score where ``scored[b]`` (else ``None``: a neutral line only extends the slot)."""
        ...


class PerSlotScorers:
    """One :class:`LineScorer` per slot as a :class:`BatchedLineScorer`; each slot's calls run
    in ``pool``'s threads (serially without one), so scorers that execute code (e.g. the
    oracle :class:`~codegym.envs.oracle.ReferenceCompletionScorer`) work in parallel.

    Args:
        scorers: One scorer per slot, each its own object (a scorer holds one episode).
        pool: Threads for the calls.

    Raises:
        ValueError: ``scorers`` is empty, holds a non-scorer, or the same object twice.
    """

    def __init__(self, scorers: Sequence[LineScorer], pool: Executor | None = None) -> None:
        if not scorers:
            raise ValueError("scorers must hold one LineScorer per slot, got none")
        for i, s in enumerate(scorers):
            if not isinstance(s, LineScorer):
                raise ValueError(f"scorers[{i}] is a {type(s).__name__}, not a LineScorer (reset/score)")
        if len({id(s) for s in scorers}) != len(scorers):
            raise ValueError(
                "scorers holds the same object in several slots; a LineScorer keeps one "
                "episode's state, so give each slot its own"
            )
        self.scorers = list(scorers)
        self.num_slots = len(self.scorers)
        self.pool = pool

    def _map(self, fn: Callable[..., Any], *args: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, *args) if self.pool is not None else map(fn, *args))

    def reset(self, tasks: Mapping[int, Task]) -> dict[int, float]:
        """Reset each given slot's scorer on its task."""
        slots = list(tasks)
        empties = self._map(lambda b: float(self.scorers[b].reset(tasks[b])), slots)
        return dict(zip(slots, empties))

    def score_lines(self, lines: Sequence[str | None], scored: Sequence[bool]) -> list[float | None]:
        """Each slot's scorer scores (or, for a neutral line, appends) its line."""
        if len(lines) != self.num_slots or len(scored) != self.num_slots:
            raise ValueError(f"lines and scored need {self.num_slots} entries, got {len(lines)} and {len(scored)}")
        slots = [b for b, line in enumerate(lines) if line is not None]
        out: list[float | None] = [None] * self.num_slots
        for b, score in zip(slots, self._map(lambda b: feed_line(self.scorers[b], lines[b], scored[b]), slots)):
            out[b] = score
        return out

    def close(self) -> None:
        """Close every scorer that can be closed."""
        for s in self.scorers:
            close = getattr(s, "close", None)
            if close is not None:
                close()
