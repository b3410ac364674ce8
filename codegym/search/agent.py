"""The env side of a search: an agent that searches when an episode starts, then writes its
answer into the env one line per step.

:class:`SearchAgent` works with the one rollout loop (:func:`codegym.rollout.run_episodes`,
``codegym eval``): at ``reset_batch`` it runs its search on the tasks of every slot at once
(the wave's tasks side by side), and ``act_batch`` then returns each slot's chosen program
line by line, followed by :data:`codegym.SUBMIT`. The env scores, shapes and executes what it
is given as it would any agent's lines. :meth:`SearchAgent.episode_stats` reports what the
search of a slot spent (``codegym eval`` adds it to the episode's row and sums it).

:class:`ReplayAgent` writes programs given in advance (to run search candidates through the
env and get the harness's verdicts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from codegym.constants import SUBMIT
from codegym.search.strategies import SearchResult
from codegym.tasks.base import Task

#: ``search(tasks) -> one SearchResult per task`` (e.g. a ``functools.partial`` of
#: :func:`codegym.search.best_of_n` or :func:`codegym.search.beam_search`).
Search = Callable[[list[Task]], list[SearchResult]]


def _tasks(infos: Sequence[dict[str, Any]]) -> list[Task]:
    tasks = [info.get("task") if isinstance(info, dict) else None for info in infos]
    missing = [i for i, t in enumerate(tasks) if t is None]
    if missing:
        raise ValueError(f"a search agent needs info['task'] at reset (the env's reset info); slots {missing} have none")
    return tasks  # type: ignore[return-value]


class _Writer:
    """Writes one fixed program per slot, line by line, then SUBMIT."""

    def __init__(self) -> None:
        self.programs: list[list[str]] = []
        self.written: list[int] = []

    def act_batch(self, observations: Sequence[dict[str, str] | None]) -> list[str | None]:
        """The next line (or SUBMIT) of each live slot's program; ``None`` for finished slots."""
        if len(observations) != len(self.programs):
            raise ValueError("act_batch needs reset_batch with the same number of slots first")
        out: list[str | None] = []
        for b, obs in enumerate(observations):
            if obs is None:
                out.append(None)
            elif self.written[b] < len(self.programs[b]):
                out.append(self.programs[b][self.written[b]])
                self.written[b] += 1
            else:
                out.append(SUBMIT)
        return out


class SearchAgent(_Writer):
    """Searches at reset, then writes the chosen programs (see the module docstring).

    Args:
        search: The search (:data:`Search`).
    """

    def __init__(self, search: Search) -> None:
        super().__init__()
        self.search = search
        self.results: list[SearchResult] = []

    def reset_batch(self, observations: Sequence[dict[str, str]], infos: Sequence[dict[str, Any]]) -> None:
        """Run the search for every slot's task (``infos[b]["task"]``)."""
        if len(observations) != len(infos):
            raise ValueError(f"reset_batch got {len(observations)} observations but {len(infos)} infos")
        self.results = self.search(_tasks(infos))
        self.programs = [list(r.lines) for r in self.results]
        self.written = [0] * len(self.programs)

    def episode_stats(self, slot: int) -> dict[str, Any]:
        """Slot ``slot``'s search: ``{"budget": {...}, "search": {"chosen", "candidates",
        "aggregation", "score", "ended"}}`` (:meth:`SearchResult.to_dict`)."""
        if not 0 <= slot < len(self.results):
            raise ValueError(f"slot must be in [0, {len(self.results)}), got {slot}")
        info = self.results[slot].to_dict()
        return {"budget": info.pop("budget"), "search": info}


class ReplayAgent(_Writer):
    """Writes given programs: episode ``i`` of the rollout (in
    :func:`~codegym.rollout.run_episodes`' order) gets ``programs[i]``.

    Args:
        programs: ``(task_id, lines)`` per episode, in rollout order; the task id is checked
            against the env's task.
    """

    def __init__(self, programs: Sequence[tuple[str, Sequence[str]]]) -> None:
        super().__init__()
        self.queue = [(tid, list(lines)) for tid, lines in programs]
        self.next = 0

    def reset_batch(self, observations: Sequence[dict[str, str]], infos: Sequence[dict[str, Any]]) -> None:
        """Take the next ``len(observations)`` programs."""
        tasks = _tasks(infos)
        batch = self.queue[self.next : self.next + len(tasks)]
        if len(batch) < len(tasks):
            raise ValueError(f"ReplayAgent holds {len(self.queue)} programs; the rollout asked for more")
        for (tid, _), task in zip(batch, tasks):
            if tid != task.task_id:
                raise ValueError(f"ReplayAgent: the env's task is {task.task_id!r}, the program is for {tid!r}")
        self.next += len(tasks)
        self.programs = [lines for _, lines in batch]
        self.written = [0] * len(batch)


__all__ = ["ReplayAgent", "Search", "SearchAgent"]
