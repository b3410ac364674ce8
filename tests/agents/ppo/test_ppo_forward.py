"""``agents.ppo.batch.forward``'s chunked path: log-probs and entropy on the generated positions
only, a chunk of the vocabulary projection at a time, equal (values and gradients) to the
whole-vocabulary pass; a value head on the policy's hidden states; gradient checkpointing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.ppo.batch import Episode, PolicyModel, PPOBatch, forward, split_batch
from agents.ppo.critic import ValueHead
from codegym.lm import load_causal_lm
from codegym.memory import checkpointing_active, disable_checkpointing, enable_checkpointing
from codegym.tasks import load_suite
from codegym.tokenization import task_context


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codegym.standins import build_standin

    return build_standin(tmp_path_factory.mktemp("qwen"), arch="qwen2", tokenizer="qwen2", pretrain_steps=0,
                         pretrain_tasks=60)  # fmt: skip


def _batch(policy_dir: Path) -> tuple[torch.nn.Module, PPOBatch, object]:
    model, tok = load_causal_lm(policy_dir)
    tasks = load_suite("pipelines", min_steps=2, max_steps=4, seed=0).take(3, "train")
    episodes = []
    for i, task in enumerate(tasks):  # 3 groups of unequal size, programs of unequal length
        for k in range(1 + i):
            lines = task.solution_lines[: 1 + (k + i) % task.horizon]
            episodes.append(Episode(task=task, context=task_context(task), lines=lines, eos=k % 2 == 0))
    batch = PPOBatch.from_episodes(episodes, tok)
    return model, batch, split_batch(batch, int(tok.pad_token_id))


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    out = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
@pytest.mark.parametrize("shared", [False, True])
def test_chunked_log_probs_equal_the_whole_vocabulary_pass(family, shared, tiny_policy_dir, qwen_dir) -> None:
    model, batch, split = _batch(tiny_policy_dir if family == "gpt2" else qwen_dir)
    split = split if shared else None
    mask = batch.action_mask
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0))

    whole = forward(model, batch, temperature=0.7, split=split)
    ((whole.logprobs + 0.1 * whole.entropy) * weights * mask).sum().backward()
    want = _grads(model)
    chunked = forward(model, batch, temperature=0.7, split=split, chunk_tokens=5)
    ((chunked.logprobs + 0.1 * chunked.entropy) * weights * mask).sum().backward()
    got = _grads(model)

    assert torch.allclose(chunked.logprobs[mask], whole.logprobs[mask], atol=1e-5)
    assert torch.allclose(chunked.entropy[mask], whole.entropy[mask], atol=1e-5)
    assert torch.all(chunked.logprobs[~mask] == 0) and torch.all(chunked.entropy[~mask] == 0)
    assert sum(float(g.abs().sum()) for g in want) > 0
    for g_got, g_want in zip(got, want):
        assert torch.allclose(g_got, g_want, atol=1e-5), g_got.shape
    # a PolicyModel (what DDP wraps) gives the same, and so does one chunk for everything
    again = forward(PolicyModel(model), batch, temperature=0.7, split=split)
    assert torch.allclose(again.logprobs, chunked.logprobs, atol=1e-6)


def test_no_vocabulary_sized_tensor_for_the_whole_batch(tiny_policy_dir) -> None:
    model, batch, _ = _batch(tiny_policy_dir)
    head = model.get_output_embeddings()
    rows: list[int] = []
    hook = head.register_forward_hook(lambda m, args, out: rows.append(out.reshape(-1, out.shape[-1]).shape[0]))
    try:
        forward(model, batch, chunk_tokens=8)
        chunked = list(rows)
        rows.clear()
        forward(model, batch)
    finally:
        hook.remove()
    assert max(chunked) <= 8 and sum(chunked) == batch.num_action_tokens
    assert rows == [batch.input_ids.numel()]  # the whole-vocabulary pass: every position


def test_value_head_on_the_policy_hidden_states(tiny_policy_dir) -> None:
    model, batch, split = _batch(tiny_policy_dir)
    head = ValueHead(model.config.hidden_size, objective="bce", value_scale=0.5, value_shift=0.5)
    out = forward(model, batch, split=split, value_head=head, chunk_tokens=16)
    hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    raw = head.score(hidden[:, :-1]).squeeze(-1)  # (B, S-1)
    want = 0.5 * (2 * torch.sigmoid(raw) - 1) + 0.5
    mask = batch.action_mask
    assert torch.allclose(out.values[mask], want[mask], atol=1e-5) and torch.all(out.values[~mask] == 0)
    # values only, with the backbone frozen: gradients reach the head alone
    only = forward(model, batch, value_head=head, logprobs=False, train_backbone=False)
    assert only.logprobs is None and torch.allclose(only.values, out.values, atol=1e-5)
    only.values[mask].sum().backward()
    assert head.score.weight.grad is not None
    assert all(p.grad is None for p in model.parameters())


def test_gradient_checkpointing_gives_the_same_gradients(qwen_dir) -> None:
    model, batch, split = _batch(qwen_dir)
    mask = batch.action_mask
    loss = forward(model, batch, chunk_tokens=16).logprobs[mask].sum()
    loss.backward()
    want = _grads(model)
    enable_checkpointing(model)
    assert checkpointing_active(model) and not model.training
    saved: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        loss2 = forward(model, batch, chunk_tokens=16).logprobs[mask].sum()
    loss2.backward()
    for g_got, g_want in zip(_grads(model), want):
        assert torch.allclose(g_got, g_want, atol=1e-5)
    assert all(not m.training for m in model.modules())  # dropout never switched on
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(-t.numel()) or t, lambda t: t):
        disable_checkpointing(model)
        forward(model, batch, chunk_tokens=16).logprobs[mask].sum()
    kept_with = sum(n for n in saved if n > 0)
    kept_without = -sum(n for n in saved if n < 0)
    assert kept_with < 0.7 * kept_without, (kept_with, kept_without)  # fewer activations kept for backward
    enable_checkpointing(model)
    with pytest.raises(ValueError, match="checkpointing"):
        forward(model, batch, split=split, chunk_tokens=16)
