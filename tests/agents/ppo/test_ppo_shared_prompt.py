"""Encoding each prompt once per group gives the full forward pass's values and gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.ppo.batch import Episode, PPOBatch
from agents.ppo.critic import build_critic, critic_values
from agents.ppo.losses import token_logprobs
from agents.ppo.shared_prompt import (
    shared_prompt_logits,
    shared_prompt_values,
    split_by_prompt,
    to_full,
)
from codegym.lm import load_causal_lm
from codegym.tasks import load_suite
from codegym.tokenization import task_context


def _batch(tiny_policy_dir: Path):
    model, tok = load_causal_lm(tiny_policy_dir)
    tasks = load_suite("pipelines", min_steps=2, max_steps=4, seed=0).take(3, "train")
    episodes = []
    for i, task in enumerate(tasks):  # 3 groups of unequal size, programs of unequal length
        for k in range(1 + i):
            lines = task.solution_lines[: 1 + (k + i) % task.horizon]
            episodes.append(Episode(task=task, context=task_context(task), lines=lines, eos=k % 2 == 0))
    batch = PPOBatch.from_episodes(episodes, tok)
    split = split_by_prompt(batch.input_ids, batch.attention_mask, batch.prompt_len, batch.group, tok.pad_token_id)
    return model, tok, batch, split


def test_split_recovers_prompts_and_programs(tiny_policy_dir: Path) -> None:
    _, _, batch, split = _batch(tiny_policy_dir)
    assert split.prompt_ids.shape[0] == 3 and split.row_group.tolist() == [0, 1, 1, 2, 2, 2]
    for b in range(batch.input_ids.shape[0]):
        g, p = int(split.row_group[b]), int(batch.prompt_len[b])
        n = int(batch.attention_mask[b].sum())
        assert torch.equal(split.prompt_ids[g, :p], batch.input_ids[b, :p])
        assert torch.equal(split.comp_ids[b, : n - p], batch.input_ids[b, p:n])
        assert int(split.comp_mask[b].sum()) == n - p == int(batch.action_mask[b].sum())
    bad = batch.group.clone()
    bad[1] = 0  # a row with another prompt in group 0
    with pytest.raises(ValueError, match="another prompt"):
        split_by_prompt(batch.input_ids, batch.attention_mask, batch.prompt_len, bad, 0)


def test_policy_logprobs_and_gradients_match_the_full_pass(tiny_policy_dir: Path) -> None:
    model, _, batch, split = _batch(tiny_policy_dir)
    mask = batch.action_mask
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0)) * mask

    full_logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    full = token_logprobs(full_logits, batch.targets)
    (full.logprobs * weights).sum().backward()
    grads_full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    stats = token_logprobs(shared_prompt_logits(model, split), split.comp_ids)
    shared = to_full(stats.logprobs, split, batch.input_ids.shape[1])
    (shared * weights).sum().backward()
    assert torch.allclose(shared[mask], full.logprobs[mask], atol=1e-5)
    assert torch.all(shared[~mask] == 0)
    ent = to_full(stats.entropy, split, batch.input_ids.shape[1])
    assert torch.allclose(ent[mask], full.entropy[mask], atol=1e-5)
    for g_full, p in zip(grads_full, model.parameters()):
        assert torch.allclose(p.grad, g_full, atol=1e-5), p.shape


def test_critic_values_match_the_full_pass(tiny_policy_dir: Path, tiny_prm_dir: Path) -> None:
    _, _, batch, split = _batch(tiny_policy_dir)
    critic = build_critic("prm", tiny_prm_dir, None)
    mask = batch.action_mask
    full = critic_values(critic, batch.input_ids, batch.attention_mask)[:, :-1]
    full[mask].sum().backward()
    grads_full = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    shared = shared_prompt_values(critic, split, batch.input_ids.shape[1])
    shared[mask].sum().backward()
    assert torch.allclose(shared[mask], full[mask], atol=1e-5)
    for g_full, p in zip(grads_full, critic.parameters()):
        assert torch.allclose(p.grad, g_full, atol=1e-5), p.shape
