"""Line-level beam search (the algorithm is described in :mod:`codegym.search.strategies`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from codegym.constants import SUBMIT
from codegym.rollout import SamplerAgent
from codegym.search.aggregate import SearchBudget, aggregate, check_aggregation, pick
from codegym.search.scorers import Scores, SearchScorer, SlotScorer
from codegym.search.strategies import Candidate, SearchResult, _check, _draw, _start
from codegym.tasks.base import Task


@dataclass
class _Option:
    """A candidate of one step: a longer beam (``ended is None``) or a finished program."""

    lines: list[str]
    scores: list[float | None]
    slot: int
    ended: str | None


@dataclass
class _TaskBeams:
    """The beams of one task: its slots are ``base .. base + width`` (``width = beams * k``)."""

    task: Task
    base: int
    width: int
    live: list[_Option]
    finished: list[Candidate] = field(default_factory=list)
    budget: SearchBudget = field(default_factory=SearchBudget)

    def slots(self) -> list[tuple[int, _Option]]:
        """The task's slots split evenly among its live beams (the earlier beams get one more
        when they do not divide ``width``), each with its beam."""
        n = len(self.live)
        counts = [self.width // n + (j < self.width % n) for j in range(n)] if n else []
        owners = [beam for beam, c in zip(self.live, counts) for _ in range(c)]
        return [(self.base + i, beam) for i, beam in enumerate(owners)]


def keep_best(options: Sequence[_Option], beams: int, aggregation: str) -> list[_Option]:
    """The ``beams`` best options by the aggregate of their line scores (the earliest first
    on ties), identical ones (same lines, both finished or both not) counted once."""
    seen: set[tuple[tuple[str, ...], bool]] = set()
    unique = []
    for opt in options:
        key = (tuple(opt.lines), opt.ended is None)
        if key not in seen:
            seen.add(key)
            unique.append(opt)
    order = sorted(range(len(unique)), key=lambda i: (-aggregate(unique[i].scores, aggregation), i))
    return [unique[i] for i in order[:beams]]


def _with_final(scores: list[float | None], final: float | None) -> list[float | None]:
    """``scores`` with the last scored line's score replaced by a finished program's score."""
    out = list(scores)
    if final is not None:
        for j in range(len(out) - 1, -1, -1):
            if out[j] is not None:
                out[j] = final
                break
    return out


def _options(agent: SamplerAgent, owners: dict[int, tuple[_TaskBeams, _Option]], actions: list[str | None],
             spent: list[int], lines: Scores, max_lines: int) -> dict[int, _Option]:  # fmt: skip
    """Each active slot's candidate of this step (its budget booked to its task)."""
    out = {}
    for s, (state, beam) in owners.items():
        action, b = actions[s], state.budget
        b.sampled_tokens += spent[s]
        b.executions += lines.executions[s]
        if action is None or action == SUBMIT:
            out[s] = _Option(list(beam.lines), list(beam.scores), s, agent.submit_cause[s] or "eos")
            continue
        b.sampled_lines += 1
        b.scored_lines += lines.scores[s] is not None
        ended = None
        if lines.full[s]:
            ended = "full"
        elif agent.sampler.slots[s].pending_submit:  # EOS drawn right after the line
            ended, b.sampled_tokens = "eos", b.sampled_tokens + 1
        elif len(beam.lines) + 1 >= max_lines:
            ended = "limit"
        out[s] = _Option([*beam.lines, action], [*beam.scores, lines.scores[s]], s, ended)
    return out


def _finish_scores(options: dict[int, _Option], owners: dict[int, tuple[_TaskBeams, _Option]], scorer: SlotScorer) -> None:
    """Give the programs that ended this step the scorer's submit score (the oracle's verdict)."""
    ended = [s for s, opt in options.items() if opt.ended is not None and opt.ended != "full"]
    if not ended:
        return
    final = scorer.submit_scores(ended)
    for i, s in enumerate(ended):
        options[s].scores = _with_final(options[s].scores, final.scores[i])
        owners[s][0].budget.executions += final.executions[i]


def _step(agent: SamplerAgent, scorer: SlotScorer, states: list[_TaskBeams], beams: int, aggregation: str,
          max_lines: int) -> None:  # fmt: skip
    """One step for every task: draw, score, keep the best, fan the kept beams out."""
    owners = {s: (state, beam) for state in states for s, beam in state.slots()}
    active = [s in owners for s in range(agent.sampler.batch_size)]
    actions, spent = _draw(agent, active)
    lines = scorer.score_lines([actions[s] if s in owners and actions[s] != SUBMIT else None for s in range(len(active))])
    options = _options(agent, owners, actions, spent, lines, max_lines)
    _finish_scores(options, owners, scorer)
    index = list(range(len(active)))
    for state in states:
        if not state.live:
            continue
        mine = [options[s] for s, _ in state.slots()]
        kept = keep_best(mine, beams, aggregation)
        state.finished += [Candidate(o.lines, o.scores, o.ended) for o in kept if o.ended is not None]
        state.live = [o for o in kept if o.ended is None]
        for s, beam in state.slots():
            index[s] = beam.slot
    if index != list(range(len(active))):
        agent.select_slots(index)
        scorer.select(index)


def beam_search(agent: SamplerAgent, scorer: SearchScorer, tasks: Sequence[Task], *, beams: int, k: int,
                aggregation: str = "last", max_lines: int = 32) -> list[SearchResult]:  # fmt: skip
    """Line-level beam search (see :mod:`codegym.search.strategies`), one result per task.

    Args:
        agent: Samples the candidate lines (its generator continues across calls).
        scorer: Scores each candidate line (one slot per sampler slot).
        tasks: The tasks (all searched side by side: ``len(tasks) * beams * k`` slots).
        beams: Beams kept per task (B).
        k: Candidate lines drawn per beam and step.
        aggregation: Ranks the candidates of a step and the finished programs.
        max_lines: A beam ends after this many lines.
    """
    _check("beams", beams)
    _check("k", k)
    _check("max_lines", max_lines)
    check_aggregation(aggregation)
    if not tasks:
        return []
    width = beams * k
    _start(agent, tasks, width)
    slots = scorer.open_slots([t for t in tasks for _ in range(width)])
    states = [_TaskBeams(t, i * width, width, [_Option([], [], i * width, None)]) for i, t in enumerate(tasks)]
    while any(state.live for state in states):
        _step(agent, slots, states, beams, aggregation, max_lines)
    results = []
    for state in states:
        state.budget.programs = len(state.finished)
        chosen = pick([c.scores for c in state.finished], aggregation)
        results.append(SearchResult(state.task, state.finished, chosen, aggregation, state.budget))
    return results


__all__ = ["beam_search", "keep_best"]
