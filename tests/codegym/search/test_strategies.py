"""Best-of-N and beam search on a real tiny policy and PRM: the scores they rank by, the
programs they keep, and the budget they count."""

from __future__ import annotations

import pytest
import torch

from codegym.constants import SUBMIT
from codegym.lm import load_causal_lm
from codegym.prm.model import ProcessRewardModel
from codegym.prm.scoring import IncrementalScorer
from codegym.rollout import SamplerAgent
from codegym.sampling import LineSampler
from codegym.search import PRMScorer, beam_search, best_of_n
from codegym.search.beam import _Option, keep_best
from codegym.tasks import load_suite
from codegym.tokenization import encode_lines


@pytest.fixture(scope="module")
def tasks():
    return load_suite("pipelines", min_steps=1, max_steps=3, seed=0).take(3, "test")


@pytest.fixture(scope="module")
def prm(tiny_prm_dir):
    return ProcessRewardModel.from_pretrained(tiny_prm_dir)


def _agent(path, seed: int = 0) -> SamplerAgent:
    torch.set_num_threads(1)
    model, tok = load_causal_lm(path)
    sampler = LineSampler(model.eval(), tok, max_line_tokens=12, generator=torch.Generator().manual_seed(seed))
    return SamplerAgent(sampler)


def _reference_scores(prm, task, lines) -> list[float | None]:
    ref = IncrementalScorer(prm)
    ref.reset(task)
    out = []
    for line in lines:
        if not line.strip() or line.strip().startswith("#"):
            ref.append(line)
            out.append(None)
        else:
            out.append(ref.score(line))
    return out


def _close(got, want) -> bool:
    return len(got) == len(want) and all((g is None and w is None) or (g is not None and w is not None and abs(g - w) < 1e-4)
                                         for g, w in zip(got, want))  # fmt: skip


def test_best_of_n_ranks_by_the_prm_and_counts_its_budget(tiny_policy_dir, prm, tasks) -> None:
    agent = _agent(tiny_policy_dir)
    results = best_of_n(agent, PRMScorer(prm), tasks, n=3, aggregation="mean", max_lines=5)
    tok = agent.sampler.tokenizer
    for r in results:
        assert len(r.candidates) == 3 and r.aggregation == "mean"
        for c in r.candidates:
            assert _close(c.scores, _reference_scores(prm, r.task, c.lines))
            assert len(c.lines) <= 5 and (c.ended == "limit") == (len(c.lines) == 5)
        assert r.chosen == r.pick("mean")
        tokens = sum(len(p) for c in r.candidates for p in encode_lines(tok, c.lines)) + sum(c.ended == "eos" for c in r.candidates)
        assert r.budget.to_dict() == {
            "programs": 3, "sampled_lines": sum(len(c.lines) for c in r.candidates), "sampled_tokens": tokens,
            "scored_lines": sum(s is not None for c in r.candidates for s in c.scores), "executions": 0,
        }  # fmt: skip


class _Counting(SamplerAgent):
    """Counts the lines drawn per task at each call (the test's own count of the budget)."""

    def __init__(self, inner: SamplerAgent, width: int) -> None:
        self.__dict__.update(inner.__dict__)
        self.width = width
        self.steps: list[list[int]] = []

    def act_batch(self, observations):
        out = super().act_batch(observations)
        per_task = [0] * (len(out) // self.width)
        for s, a in enumerate(out):
            if a is not None and a != SUBMIT:
                per_task[s // self.width] += 1
        self.steps.append(per_task)
        return out


def test_beam_search_keeps_scored_programs_and_counts_its_budget(tiny_policy_dir, prm, tasks) -> None:
    beams, k = 2, 2
    agent = _Counting(_agent(tiny_policy_dir, seed=1), beams * k)
    results = beam_search(agent, PRMScorer(prm), tasks, beams=beams, k=k, max_lines=4)
    for t, r in enumerate(results):
        drawn = [step[t] for step in agent.steps]
        assert r.budget.sampled_lines == sum(drawn) and max(drawn) <= beams * k
        assert r.budget.programs == len(r.candidates) >= 1
        for c in r.candidates:  # scores read through copied cache rows equal a fresh scoring
            assert _close(c.scores, _reference_scores(prm, r.task, c.lines))
            assert len(c.lines) <= 4
        assert r.chosen == r.pick("last")
        assert r.budget.scored_lines <= r.budget.sampled_lines
    assert any(len(c.lines) >= 2 for r in results for c in r.candidates)  # beams were continued
    # the first step draws all beams * k candidates from the empty program
    assert agent.steps[0] == [beams * k] * len(tasks)
    assert beam_search(agent, PRMScorer(prm), [], beams=2, k=2) == []
    assert best_of_n(agent, PRMScorer(prm), [], n=2) == []
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        beam_search(agent, PRMScorer(prm), tasks, beams=2, k=0)


def _opt(lines, score, slot, ended=None) -> _Option:
    return _Option(list(lines), [score] if lines else [], slot, ended)


def test_keep_best_ranks_dedupes_and_breaks_ties_by_order() -> None:
    options = [
        _opt(["a"], 0.1, 0), _opt(["b"], 0.7, 1), _opt(["b"], 0.7, 2),  # a duplicate of slot 1
        _opt(["b"], 0.7, 3, "eos"),  # the same lines, finished: a different option
        _opt(["c"], 0.7, 4), _opt(["d"], -0.3, 5),
    ]  # fmt: skip
    kept = keep_best(options, 3, "last")
    assert [o.slot for o in kept] == [1, 3, 4]
    assert [o.slot for o in keep_best(options, 10, "last")] == [1, 3, 4, 0, 5]
