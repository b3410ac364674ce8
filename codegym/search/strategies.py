"""Best-of-N reranking and line-level beam search over a policy's line sampler.

Both drive a :class:`codegym.rollout.SamplerAgent` -- the agent plain sampling uses, with its
KV cache kept across lines -- the way the env would (one call per line for every live
program), so a search with one candidate draws exactly what plain sampling draws with the
same seed. Both return one :class:`SearchResult` per task: the finished programs the search
chose among (with their line scores), the one it chose, and its :class:`SearchBudget`.

**Best-of-N** (:func:`best_of_n`) samples ``n`` complete programs per task (``n`` slots per
task, fanned out from one encoding of the context), scores every line of every program, and
picks the program with the highest aggregate (:func:`codegym.search.aggregate.aggregate`).
Its budget is the lines of all ``n`` programs: about ``n · L`` sampled lines for programs of
``L`` lines.

**Beam search** (:func:`beam_search`) keeps up to ``beams`` partial programs per task and
draws ``beams · k`` candidate lines per task at every step, split evenly among the live beams
(``k`` each while all ``beams`` are live; the first step draws all of them from the empty
program; when beams have ended, the remaining ones draw more each, so every step spends the
same). A candidate is a line (the prefix it ends is scored) or the end of the program (EOS: the
beam's program, finished, with the scorer's submit score where it has one -- the oracle's
verdict; a PRM keeps the last line's score). Candidates are ranked by the aggregate of their
line scores, identical ones count once, and the best ``beams`` are kept: a kept candidate that
ended is finished, the others are the next step's beams (each fanned out to its slots by
copying its KV-cache rows: :meth:`codegym.rollout.SamplerAgent.select_slots`). A beam also ends
at ``max_lines`` lines, or when its next line no longer fits the scorer's positions. When no
beam is left, the finished program with the highest aggregate is the answer.

**Budget.** A *sampled line* is one line of code the policy drew, kept or discarded; the draw
that ends a program (EOS) is not a line, but its token counts in the sampled tokens
(:class:`~codegym.search.aggregate.SearchBudget`). Plain sampling spends ``L`` lines on a
program of ``L`` lines; best-of-N spends the lines of its ``n`` programs, about ``n · L``;
beam search spends ``beams · k`` lines per step for about ``L`` steps, about
``beams · k · L``. So ``beams · k = n`` compares the two at an equal budget, and the budget
actually spent is counted per task (``SearchResult.budget``), not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codegym.constants import SUBMIT
from codegym.rollout import SamplerAgent
from codegym.search.aggregate import SearchBudget, aggregate, check_aggregation, pick
from codegym.search.scorers import SearchScorer
from codegym.tasks.base import Task


@dataclass
class Candidate:
    """One finished program a search chose among.

    Attributes:
        lines: Its lines.
        scores: Per line: the scorer's score (``None``: a neutral line or not scored).
        ended: Why it ended: ``eos`` (the policy submitted), ``limit`` (``max_lines``),
            ``full`` (the scorer's positions), or the sampler agent's submit cause
            (``budget``: its token budget; ``closed``: the policy's positions).
    """

    lines: list[str]
    scores: list[float | None]
    ended: str = "eos"


@dataclass
class SearchResult:
    """A search's answer for one task."""

    task: Task
    candidates: list[Candidate]
    chosen: int
    """Index of the chosen candidate."""
    aggregation: str
    """The aggregation that chose it."""
    budget: SearchBudget = field(default_factory=SearchBudget)

    @property
    def lines(self) -> list[str]:
        """The chosen program."""
        return self.candidates[self.chosen].lines

    def pick(self, how: str) -> int:
        """The candidate another aggregation would choose."""
        return pick([c.scores for c in self.candidates], how)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no candidate texts)."""
        chosen = self.candidates[self.chosen]
        return {"chosen": self.chosen, "candidates": len(self.candidates), "aggregation": self.aggregation,
                "score": aggregate(chosen.scores, self.aggregation), "ended": chosen.ended,
                "budget": self.budget.to_dict()}  # fmt: skip


def _check(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _start(agent: SamplerAgent, tasks: Sequence[Task], fan: int) -> None:
    """Encode each task's context once, then fan each out to ``fan`` consecutive slots."""
    agent.reset_batch([{"prompt": t.prompt, "code": ""} for t in tasks], [{"task": t} for t in tasks])
    if fan > 1:
        agent.select_slots([i for i in range(len(tasks)) for _ in range(fan)])


def _draw(agent: SamplerAgent, active: Sequence[bool]) -> tuple[list[str | None], list[int]]:
    """One line (or SUBMIT) per active slot, as the env would ask for it; and the tokens each
    slot spent on it."""
    before = list(agent.gen_tokens)
    observations = [
        {"prompt": "", "code": "".join(line + "\n" for line in lines)} if on else None
        for on, lines in zip(active, agent.sampler.lines)
    ]  # fmt: skip
    actions = agent.act_batch(observations)
    return actions, [after - b for after, b in zip(agent.gen_tokens, before)]


def sample_programs(agent: SamplerAgent, tasks: Sequence[Task], n: int, max_lines: int) -> tuple[list[Candidate], list[int]]:
    """``n`` complete programs per task, task by task (slot ``t * n + i``: sample ``i`` of
    task ``t``), each ending at EOS or after ``max_lines`` lines; and the tokens each cost.

    Scores are left empty (``None`` per line)."""
    _check("n", n)
    _check("max_lines", max_lines)
    if not tasks:
        return [], []
    _start(agent, tasks, n)
    out = [Candidate([], [], "") for _ in range(len(tasks) * n)]
    tokens = [0] * len(out)
    live = [True] * len(out)
    while any(live):
        actions, spent = _draw(agent, live)
        for s, action in enumerate(actions):
            if not live[s]:
                continue
            tokens[s] += spent[s]
            if action is None or action == SUBMIT:
                live[s], out[s].ended = False, agent.submit_cause[s] or "eos"
                continue
            out[s].lines.append(action)
            out[s].scores.append(None)
            if len(out[s].lines) >= max_lines:
                live[s], out[s].ended = False, "limit"
    return out, tokens


def best_of_n(agent: SamplerAgent, scorer: SearchScorer, tasks: Sequence[Task], *, n: int,
              aggregation: str = "last", max_lines: int = 32) -> list[SearchResult]:  # fmt: skip
    """Best-of-N reranking (see the module docstring), one result per task.

    Args:
        agent: Samples the programs (its generator continues across calls).
        scorer: Scores every line of every program.
        tasks: The tasks (all searched side by side: ``len(tasks) * n`` sampler slots).
        n: Programs per task.
        aggregation: How line scores rank programs (:data:`codegym.search.AGGREGATIONS`).
        max_lines: A program ends after this many lines (as the env's ``max_lines``).
    """
    check_aggregation(aggregation)
    if not tasks:
        return []
    programs, tokens = sample_programs(agent, tasks, n, max_lines)
    scored = scorer.score_programs([t for t in tasks for _ in range(n)], [p.lines for p in programs])
    for p, scores in zip(programs, scored.scores):
        p.scores = list(scores)
    results = []
    for t, task in enumerate(tasks):
        mine = range(t * n, (t + 1) * n)
        cands = [programs[i] for i in mine]
        budget = SearchBudget(
            programs=n, sampled_lines=sum(len(c.lines) for c in cands), sampled_tokens=sum(tokens[i] for i in mine),
            scored_lines=sum(s is not None for c in cands for s in c.scores),
            executions=sum(scored.executions[i] for i in mine),
        )  # fmt: skip
        results.append(SearchResult(task, cands, pick([c.scores for c in cands], aggregation), aggregation, budget))
    return results


__all__ = ["Candidate", "SearchResult", "best_of_n", "sample_programs"]
