"""Rollouts through CodePRM-v0: episodes, rewards and the token layout PPO trains on.

A replay sampler writes known programs (the reference solution, or a corrupted one), so the
env, the sandbox verdicts and the token bookkeeping are checked against known outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

import codegym  # noqa: F401
from agents.ppo.batch import Episode, PPOBatch
from agents.ppo.rollout import collect_episodes, paper_line_rewards
from codegym.constants import SUBMIT
from codegym.tasks import load_suite
from codegym.tokenization import encode_lines
from sandboxes import make_sandbox


class ReplaySampler:
    """Writes fixed programs line by line (the LineSampler interface used by rollouts)."""

    def __init__(self, tokenizer: Any, programs: Sequence[Sequence[str]]) -> None:
        self.tokenizer = tokenizer
        self.programs = programs

    def start(self, contexts: Sequence[str]) -> None:
        self.pos = [0] * len(contexts)

    def next_lines(self, active: Sequence[bool]) -> list[str | None]:
        out: list[str | None] = []
        for b, live in enumerate(active):
            if not live:
                out.append(None)
                continue
            lines, i = self.programs[b], self.pos[b]
            self.pos[b] += 1
            out.append(lines[i] if i < len(lines) else SUBMIT)
        return out


def _run(tiny_policy_dir: Path, sandbox: Any) -> tuple[list, Any, Any, list]:
    from codegym.lm import load_tokenizer

    tok = load_tokenizer(tiny_policy_dir)
    tasks = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(4, "train")
    programs = [t.solution_lines for t in tasks]
    programs[1] = ["    return 12345"]  # a constant answer never passes
    programs[2] = programs[2] + ["# done", "    return xs"]  # unreachable extra lines still pass
    envs = [gym.make("CodePRM-v0", tasks=[tasks[0]], sandbox=sandbox, reward_mode="none",
                     max_lines=8, disable_env_checker=True) for _ in tasks]  # fmt: skip
    try:
        episodes = collect_episodes(ReplaySampler(tok, programs), envs, tasks, max_new_tokens=200)
    finally:
        for env in envs:
            env.close()
    return episodes, tok, tasks, programs


def test_known_programs_get_the_harness_verdict_and_token_layout(tiny_policy_dir: Path) -> None:
    with make_sandbox("local", workers=2) as box:
        episodes, tok, tasks, programs = _run(tiny_policy_dir, box)
    assert [e.passed for e in episodes] == [True, False, True, True]
    assert [e.test_reward for e in episodes] == [1.0, 0.0, 1.0, 1.0]
    assert all(e.eos and not e.truncated and not e.invalid for e in episodes)
    assert [e.lines for e in episodes] == [list(p) for p in programs]
    assert episodes[0].prefix_accuracy == 1.0 and episodes[1].prefix_accuracy == 0.0

    batch = PPOBatch.from_episodes(episodes, tok)
    nl = tok.encode("\n", add_special_tokens=False)
    assert len(nl) == 1
    for b, ep in enumerate(episodes):
        ends = batch.line_end[b][batch.line_end[b] >= 0]
        assert len(ends) == ep.num_lines
        assert torch.all(batch.targets[b, ends] == nl[0])  # line rewards sit on "\n" tokens
        last = int(batch.action_mask[b].nonzero().max())
        assert int(batch.targets[b, last]) == tok.eos_token_id  # the final token is EOS
        assert int(batch.action_mask[b].sum()) == ep.gen_tokens
    assert torch.equal(batch.final_reward, torch.tensor([1.0, 0.0, 1.0, 1.0]))


def test_paper_reward_divides_scores_by_the_number_of_lines() -> None:
    assert paper_line_rewards([0.5, None, -1.0, 1.0]) == [0.125, 0.0, -0.25, 0.25]
    assert paper_line_rewards([]) == []


@pytest.mark.slow
def test_executions_through_the_ray_sandbox_pool(tiny_policy_dir: Path) -> None:
    with make_sandbox("local", workers=2, pool="ray", ray_init={"num_cpus": 2}) as box:
        assert box.name == "ray"
        episodes, *_ = _run(tiny_policy_dir, box)
    assert [e.passed for e in episodes] == [True, False, True, True]


def test_policy_mask_leaves_out_ids_the_policy_did_not_draw(tiny_policy_dir: Path) -> None:
    """Drawn ids are trained as they stand; a forced newline, a re-encoded line and an EOS
    drawn mid-line are kept in the sequence but left out of the policy loss."""
    from codegym.lm import load_tokenizer
    from codegym.tokenization import encode_context, encode_lines

    tok = load_tokenizer(tiny_policy_dir)
    task = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(1, "train")[0]
    ctx = "def f(xs):\n"
    nl = encode_lines(tok, [""])[0]
    drawn = [tok.encode("    re", add_special_tokens=False) + tok.encode("turn xs", add_special_tokens=False) + nl,
             tok.encode("    xs", add_special_tokens=False)]  # fmt: skip
    ep = Episode(task=task, context=ctx, lines=["    return xs", "    xs", "    pass"], eos=True)
    ep.line_ids = [drawn[0], drawn[1] + nl, encode_lines(tok, ["    pass"])[0]]
    ep.line_forced = [0, len(nl), 0]
    ep.line_exact = [True, True, False]
    ep.eos_exact = False
    batch = PPOBatch.from_episodes([ep], tok)
    prompt = encode_context(tok, ctx)
    ids = prompt + ep.line_ids[0] + ep.line_ids[1] + ep.line_ids[2] + [tok.eos_token_id]
    assert batch.input_ids[0, : len(ids)].tolist() == ids
    p = len(prompt) - 1  # shifted index of the first action
    a, b, c = (len(x) for x in ep.line_ids)
    want = [True] * a + [True] * len(drawn[1]) + [False] * len(nl) + [False] * c + [False]
    assert batch.action_mask[0, p : p + len(want)].all()
    assert batch.policy_mask[0, p : p + len(want)].tolist() == want
    assert int(batch.policy_mask.sum()) == sum(want)
    ep.eos_exact = True
    assert bool(PPOBatch.from_episodes([ep], tok).policy_mask[0, p + len(want) - 1])


def test_closed_shaping_puts_the_closing_term_on_the_final_token(tiny_policy_dir: Path) -> None:
    """With ``dense_reward="delta"`` every episode's dense return is −Φ(empty), whatever its
    ending (pass, fail, an invalid line, the token budget), and the closing term sits on the
    final token together with the unit-test reward."""
    from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
    from codegym.lm import load_tokenizer

    tok = load_tokenizer(tiny_policy_dir)
    tasks = load_suite("pipelines", min_steps=3, max_steps=3, seed=0).take(4, "train")
    programs = [list(t.solution_lines) for t in tasks]
    programs[1] = [programs[1][0], "    return 12345"]  # right first step, then a wrong answer
    programs[2] = [programs[2][0], "    s = '\x00'"]  # an invalid line (NUL) ends the episode
    programs[3] = programs[3][:2]  # the token budget runs out before the return line
    with make_sandbox("local", workers=2) as box:
        cache = VerdictCache()
        envs = [gym.make("CodePRM-v0", tasks=[tasks[0]], sandbox=box, reward_mode="delta",
                         prm=ReferenceCompletionScorer(box, cache=cache), invalid_action="end",
                         max_lines=8, disable_env_checker=True) for _ in tasks]  # fmt: skip
        budget = sum(len(x) for x in encode_lines(tok, programs[3]))
        try:
            episodes = collect_episodes(ReplaySampler(tok, programs[:3]), envs[:3], tasks[:3],
                                        max_new_tokens=200, dense_reward="delta", dense_coef=0.5)
            episodes += collect_episodes(ReplaySampler(tok, programs[3:]), envs[3:], tasks[3:],
                                         max_new_tokens=budget, dense_reward="delta", dense_coef=0.5)
        finally:
            for env in envs:
                env.close()
    assert [e.passed for e in episodes] == [True, False, False, False]
    assert [e.invalid for e in episodes] == [False, False, True, False]
    assert episodes[3].truncated and not episodes[3].eos
    for ep in episodes:  # Φ(empty) = 1 for every pipelines task: dense return 0.5 * −1
        assert sum(ep.line_rewards) + ep.final_dense == pytest.approx(-0.5)
    assert episodes[1].line_rewards == pytest.approx([0.0, -0.5])  # Φ 1 -> 1 -> 0 (× 0.5)
    batch = PPOBatch.from_episodes(episodes, tok)
    expected = [1.0 + e.final_dense for e in episodes[:1]] + [e.final_dense for e in episodes[1:]]
    assert batch.final_reward.tolist() == pytest.approx(expected)
