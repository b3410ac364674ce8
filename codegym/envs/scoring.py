"""The dense-reward hook: any object that scores lines can drive the env's dense reward."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
