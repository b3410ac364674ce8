"""PPO's episodes from rollouts through CodePRM-v0: rewards as the env named them, and the token
layout PPO trains on.

A replay sampler writes known programs (the reference solution, or a corrupted one) through
the real :class:`codegym.rollout.SamplerAgent`, :func:`codegym.rollout.run_episodes` and
vector env, so the env, the sandbox verdicts and the token bookkeeping are checked against
known outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.ppo.batch import Episode, PPOBatch, episodes_from_records
from codegym.constants import SUBMIT
from codegym.envs.vector import CodePRMVectorEnv
from codegym.rollout import SamplerAgent, run_episodes
from codegym.sampling import SlotState
from codegym.tasks import load_suite
from codegym.tokenization import encode_lines
from sandboxes import make_sandbox


class ReplaySampler:
    """Writes fixed programs line by line, with the :class:`codegym.sampling.LineSampler`
    interface that :class:`SamplerAgent` drives (each line's ids by the tokenisation rule)."""

    def __init__(self, tokenizer: Any, programs: Sequence[Sequence[str]]) -> None:
        self.tokenizer = tokenizer
        self.programs = programs

    def start(self, contexts: Sequence[str]) -> None:
        self.batch_size = len(contexts)
        self.slots = [SlotState() for _ in contexts]

    @property
    def lines(self) -> list[list[str]]:
        return [s.lines for s in self.slots]

    def next_lines(self, active: Sequence[bool]) -> list[str | None]:
        out: list[str | None] = []
        for b, live in enumerate(active):
            slot = self.slots[b]
            if not live or slot.finished:
                out.append(None)
                continue
            i = len(slot.lines)
            if i >= len(self.programs[b]):
                slot.finished = slot.eos_exact = True
                out.append(SUBMIT)
                continue
            line = self.programs[b][i]
            slot.lines.append(line)
            slot.line_ids.append(encode_lines(self.tokenizer, [line])[0])
            slot.line_forced.append(0)
            slot.line_exact.append(True)
            out.append(line)
        return out


def _episodes(tok: Any, programs: Sequence[Sequence[str]], tasks: Sequence[Any], box: Any,
              max_new_tokens: int = 200, dense_coef: float = 1.0, **env_kwargs: Any) -> list[Episode]:
    """Roll the programs out on ``tasks`` (one slot each) and return PPO's episodes."""
    agent = SamplerAgent(ReplaySampler(tok, programs), max_new_tokens=max_new_tokens, sanitize=False)  # type: ignore[arg-type]
    env_kwargs = {"reward_mode": "none", "max_lines": 8, "invalid_action": "end", **env_kwargs}
    envs = CodePRMVectorEnv(len(tasks), tasks=[tasks[0]], sandbox=box, workers=2,
                            autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)  # fmt: skip
    episodes: list[Episode] = []
    try:
        run_episodes(agent, tasks, envs=envs,
                     on_wave=lambda wave: episodes.extend(episodes_from_records(wave, agent, dense_coef)))  # fmt: skip
    finally:
        envs.close()
    return episodes


def _run(tiny_policy_dir: Path, sandbox: Any) -> tuple[list, Any, Any, list]:
    from codegym.lm import load_tokenizer

    tok = load_tokenizer(tiny_policy_dir)
    tasks = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(4, "train")
    programs = [t.solution_lines for t in tasks]
    programs[1] = ["    return 12345"]  # a constant answer never passes
    programs[2] = programs[2] + ["# done", "    return xs"]  # unreachable extra lines still pass
    return _episodes(tok, programs, tasks, sandbox), tok, tasks, programs


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
        budget = sum(len(x) for x in encode_lines(tok, programs[3]))
        dense = {"reward_mode": "delta", "dense_coef": 0.5}
        episodes = _episodes(tok, programs[:3], tasks[:3], box, **dense,
                             prm=[ReferenceCompletionScorer(box, cache=cache) for _ in range(3)])
        episodes += _episodes(tok, programs[3:], tasks[3:], box, max_new_tokens=budget, **dense,
                              prm=[ReferenceCompletionScorer(box, cache=cache)])
    assert [e.passed for e in episodes] == [True, False, False, False]
    assert [e.invalid for e in episodes] == [False, False, True, False]
    assert episodes[3].truncated and not episodes[3].eos
    for ep in episodes:  # Φ(empty) = 1 for every pipelines task: dense return 0.5 * −1
        assert sum(ep.line_rewards) + ep.final_dense == pytest.approx(-0.5)
    assert episodes[1].line_rewards == pytest.approx([0.0, -0.5])  # Φ 1 -> 1 -> 0 (× 0.5)
    batch = PPOBatch.from_episodes(episodes, tok)
    expected = [1.0 + e.final_dense for e in episodes[:1]] + [e.final_dense for e in episodes[1:]]
    assert batch.final_reward.tolist() == pytest.approx(expected)


def test_paper_reward_reaches_each_line_as_score_over_lines(tiny_policy_dir: Path) -> None:
    """``reward_mode="paper"``: the env pays Σ s_m / T at the end, and PPO places each line's
    share s_m / T (``info["line_rewards"]``) on that line's last token, with the unit-test
    reward alone on the final token."""
    from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
    from codegym.lm import load_tokenizer

    tok = load_tokenizer(tiny_policy_dir)
    task = load_suite("pipelines", min_steps=3, max_steps=3, seed=0).take(1, "train")[0]
    program = [task.solution_lines[0], "    return 12345"]  # oracle scores +1, then -1
    with make_sandbox("local", workers=2) as box:
        (ep,) = _episodes(tok, [program], [task], box, reward_mode="paper",
                          prm=[ReferenceCompletionScorer(box, cache=VerdictCache())])  # fmt: skip
    assert ep.line_rewards == pytest.approx([0.5, -0.5])  # +1 / 2, -1 / 2
    assert ep.final_dense == 0.0 and ep.test_reward == 0.0 and not ep.passed
    batch = PPOBatch.from_episodes([ep], tok)
    rewards = torch.zeros_like(batch.action_mask, dtype=torch.float32)
    rewards[0, batch.line_end[0]] = batch.line_rewards[0]
    assert rewards.sum() == pytest.approx(0.0) and float(batch.final_reward[0]) == 0.0


# ------------------------------------------------------------------ every tokenizer family
@pytest.mark.parametrize(("style", "instruct"), [(s, i) for s in ("qwen2", "llama3", "starcoder") for i in (False, True)])
def test_ppo_trains_on_exactly_the_ids_that_wrote_the_program(style, instruct, reference_lm_dir, standin_prm_dir,
                                                              line_tasks) -> None:  # fmt: skip
    """PPO's rollout (as :meth:`PPOTrainer.rollout` runs it) with a model that continues the
    reference, for every tokenizer family: the env receives the reference lines (indentation,
    blank lines) and passes them; the batch's ids are exactly the drawn ones and decode to
    the program; each line's reward sits on the last token of its piece."""
    from reference_lm import reference_text

    from agents.ppo.gae import place_rewards
    from codegym.lm import load_causal_lm
    from codegym.sampling import LineSampler

    model, tok = load_causal_lm(reference_lm_dir(style, instruct))
    sampler = LineSampler(model, tok, temperature=1.0, max_line_tokens=48, reencode=False,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    agent = SamplerAgent(sampler, max_new_tokens=200, sanitize=False)
    episodes: list[Episode] = []
    with make_sandbox("local", workers=2) as box:
        envs = CodePRMVectorEnv(len(line_tasks), tasks=[line_tasks[0]], sandbox=box, workers=2,
                                autoreset_mode=AutoresetMode.DISABLED, prm=str(standin_prm_dir(style)),
                                reward_mode="score", max_lines=16, invalid_action="end")  # fmt: skip
        try:
            records = run_episodes(agent, line_tasks, envs=envs,
                                   on_wave=lambda wave: episodes.extend(episodes_from_records(wave, agent)))  # fmt: skip
        finally:
            envs.close()
    assert [r.lines for r in records] == [t.solution_lines for t in line_tasks]
    assert all(r.passed for r in records) and all(e.eos for e in episodes)
    batch = PPOBatch.from_episodes(episodes, tok)
    assert torch.equal(batch.policy_mask, batch.action_mask)  # every action token was drawn as it stands
    placed = place_rewards(batch.action_mask, batch.line_end, batch.line_rewards, torch.zeros(batch.size))
    for b, (ep, rec) in enumerate(zip(episodes, records)):
        ids = batch.input_ids[b, : int(batch.attention_mask[b].sum())].tolist()
        assert ids == sampler.valid_ids[b] + [tok.eos_token_id]  # exactly the ids the policy drew
        text = tok.decode(ids[:-1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert text == reference_text(tok, ep.context, rec.lines)
        assert ep.line_rewards == rec.line_rewards and any(r != 0 for r in ep.line_rewards)
        ends = batch.line_end[b, : len(rec.lines)].tolist()
        for m, piece in enumerate(ep.line_ids):
            if piece:  # the reward of line m is predicted from its piece's last token
                assert int(batch.targets[b, ends[m]]) == piece[-1]
        for pos in set(ends):  # blank lines whose newline sat in the line before share its end
            want = sum(r for r, e in zip(rec.line_rewards, ends) if e == pos)
            assert float(placed[b, pos]) == pytest.approx(want)
