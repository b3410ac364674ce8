"""Copying slots (a beam search's reorder): the sampler's cache, the agent and the batched PRM
scorer continue from a copied slot exactly as from the original."""

from __future__ import annotations

import pytest
import torch

from codegym.lm import load_causal_lm
from codegym.prm.model import ProcessRewardModel
from codegym.prm.scoring import BatchedPRMScorer, IncrementalScorer
from codegym.sampling import LineSampler
from codegym.tasks import load_suite
from codegym.tokenization import encode_program, task_context


@pytest.fixture(scope="module")
def tasks():
    return load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(3, "test")


def _sampler(path, seed: int = 0, greedy: bool = False) -> LineSampler:
    torch.set_num_threads(1)
    model, tok = load_causal_lm(path)
    return LineSampler(model.eval(), tok, greedy=greedy, max_line_tokens=8, generator=torch.Generator().manual_seed(seed))


def test_selected_slots_hold_copies_of_their_sources(tiny_policy_dir, tasks) -> None:
    s = _sampler(tiny_policy_dir)
    s.start([task_context(t) for t in tasks])
    for _ in range(2):
        s.next_lines()
    before_ids, before_lines = s.valid_ids, s.lines
    logits = s.last_logits.clone()  # (3, V)
    index = [2, 0, 0, 1]
    s.select_slots(index)
    assert s.batch_size == 4 and s.mask.shape[0] == 4 and s.last_logits.shape[0] == 4
    for i, src in enumerate(index):
        assert s.valid_ids[i] == before_ids[src] and s.lines[i] == before_lines[src]
        assert torch.equal(s.last_logits[i], logits[src])
    s.slots[1].lines.append("x")  # records are copies, not shared
    assert s.lines[2] != s.lines[1]
    s.slots[1].lines.pop()
    s.next_lines()  # the copies keep sampling; their caches stay equal to a fresh encoding
    for i, src in enumerate(index):
        ctx = task_context(tasks[src])
        assert s.valid_ids[i] == encode_program(s.tokenizer, ctx, s.lines[i]).input_ids


def test_greedy_continuation_of_a_copy_equals_the_original(tiny_policy_dir, tasks) -> None:
    a, b = _sampler(tiny_policy_dir, greedy=True), _sampler(tiny_policy_dir, greedy=True)
    contexts = [task_context(t) for t in tasks]
    a.start(contexts)
    b.start(contexts)
    for s in (a, b):
        s.next_lines()
    a.select_slots([1, 1, 2, 0, 2])
    for _ in range(3):
        la, lb = a.next_lines(), b.next_lines()
        assert la == [lb[1], lb[1], lb[2], lb[0], lb[2]]
    with pytest.raises(ValueError, match="index must name slots"):
        a.select_slots([5])
    with pytest.raises(ValueError, match="index must name slots"):
        a.select_slots([])


def test_batched_prm_scorer_continues_copied_slots(tiny_prm_dir, tasks) -> None:
    prm = ProcessRewardModel.from_pretrained(tiny_prm_dir)
    scorer = BatchedPRMScorer(prm, 2)
    for b, t in enumerate(tasks[:2]):
        scorer.reset_context(b, task_context(t))
    first = ["    xs = xs[1:]", "    xs = sorted(xs)"]
    scorer.score_lines(first)
    scorer.select_slots([1, 0, 1])
    got = scorer.score_lines(["    return sum(xs)", "    return max(xs)", "    xs = xs[::-1]"])
    for b, (src, line) in enumerate(zip([1, 0, 1], ["    return sum(xs)", "    return max(xs)", "    xs = xs[::-1]"])):
        ref = IncrementalScorer(prm)
        ref.reset(tasks[src])
        ref.score(first[src])
        assert got[b] == pytest.approx(ref.score(line), abs=1e-4)
    assert scorer.overflows([None, "x" * 10, None]) == [False, False, False]
    assert scorer.overflows([None, " ".join(["tok"] * 3000), None]) == [False, True, False]
