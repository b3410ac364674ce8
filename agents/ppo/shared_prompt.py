"""Run each prompt once per group of samples: PPO's forward passes over prompt + program.

PPO samples several programs per task, and on small code tasks the prompt is often more than
half of every sequence. Scoring (policy, reference, critic) and every minibatch update would
encode the same prompt once per sample. Here the prompts of a batch are encoded once per
*group* (episodes with the same prompt), their KV cache is repeated for the group's rows
(``index_select``: gradients from every row flow back into the one prompt pass), and only
the programs are encoded per row. The per-token outputs are mathematically those of the full
forward pass — a test compares values and gradients — at roughly ``(P / n + C) / (P + C)`` of
the tokens for prompts of P tokens, programs of C and n samples per prompt.

Outputs come back in the full "shifted" layout of :class:`agents.ppo.batch.PPOBatch`
([B, S − 1]: position ``j`` predicts token ``j + 1``), filled at the action positions
``prompt_len − 1 .. len − 2`` and 0 elsewhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from codegym.lm import forward_cached


class SplitBatch(NamedTuple):
    """A batch split into one prompt per group and one program per row.

    Shapes: G groups, P = longest prompt, B rows, C = longest program.
    """

    prompt_ids: torch.Tensor  # [G, P] long, right-padded
    prompt_mask: torch.Tensor  # [G, P] long
    prompt_len: torch.Tensor  # [G] long
    row_group: torch.Tensor  # [B] long, the group (prompt row) of each row
    comp_ids: torch.Tensor  # [B, C] long, right-padded
    comp_mask: torch.Tensor  # [B, C] long
    comp_start: torch.Tensor  # [B] long, index of the row's first program token in input_ids


def split_by_prompt(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: torch.Tensor, group: torch.Tensor, pad_id: int
) -> SplitBatch:
    """Split right-padded ``input_ids`` [B, S] into group prompts and row programs.

    Args:
        input_ids: [B, S] prompt + program ids per row (right-padded).
        attention_mask: [B, S] 1 on real tokens.
        prompt_len: [B] tokens of each row's prompt.
        group: [B] ids (any integers) equal for rows with the same prompt.
        pad_id: Id used for padding.

    Raises:
        ValueError: Rows of one group have different prompts, or a row has no program token.
    """
    device = input_ids.device
    lengths = attention_mask.sum(dim=1)  # [B]
    if bool((lengths <= prompt_len).any()):
        raise ValueError("every row needs at least one token after its prompt")
    uniq, row_group = torch.unique(group, return_inverse=True)  # row_group: [B] in [0, G)
    n_groups = len(uniq)
    first = torch.full((n_groups,), -1, dtype=torch.long)
    for b, g in enumerate(row_group.tolist()):
        if first[g] < 0:
            first[g] = b
    p_len = prompt_len[first.to(device)]  # [G]
    width = int(p_len.max())
    prompt_ids = torch.full((n_groups, width), pad_id, dtype=torch.long, device=device)
    prompt_mask = torch.zeros(n_groups, width, dtype=torch.long, device=device)
    for g in range(n_groups):
        n = int(p_len[g])
        prompt_ids[g, :n] = input_ids[int(first[g]), :n]
        prompt_mask[g, :n] = 1
    rows_p = prompt_len.tolist()
    for b, g in enumerate(row_group.tolist()):
        n = rows_p[b]
        if n != int(p_len[g]) or not torch.equal(input_ids[b, :n], prompt_ids[g, :n]):
            raise ValueError(f"row {b} has another prompt than the first row of its group")
    comp_len = lengths - prompt_len  # [B]
    c_width = int(comp_len.max())
    cols = torch.arange(c_width, device=device)  # [C]
    idx = (prompt_len[:, None] + cols[None, :]).clamp(max=input_ids.shape[1] - 1)  # [B, C]
    comp_mask = (cols[None, :] < comp_len[:, None]).long()  # [B, C]
    comp_ids = torch.where(comp_mask.bool(), input_ids.gather(1, idx), torch.full_like(idx, pad_id))
    return SplitBatch(prompt_ids, prompt_mask, p_len, row_group.to(device), comp_ids, comp_mask, prompt_len)


def _expand_cache(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache whose row ``b`` is row ``rows[b]`` of ``cache`` (differentiable)."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in cache.layers])


def _program_inputs(sb: SplitBatch) -> dict[str, torch.Tensor]:
    mask = torch.cat([sb.prompt_mask.index_select(0, sb.row_group), sb.comp_mask], dim=1)  # [B, P + C]
    cols = torch.arange(sb.comp_ids.shape[1], device=sb.comp_ids.device)
    pos = sb.prompt_len.index_select(0, sb.row_group)[:, None] + cols[None, :]  # [B, C]
    return {"input_ids": sb.comp_ids, "attention_mask": mask, "position_ids": pos}


def to_full(aligned: torch.Tensor, sb: SplitBatch, full_len: int) -> torch.Tensor:
    """[B, C, ...] outputs aligned with program tokens -> the shifted full layout [B, S−1, ...]:
    entry ``j`` of a row goes to position ``prompt_len − 1 + j`` (zeros elsewhere)."""
    batch, width = aligned.shape[:2]
    out = aligned.new_zeros((batch, full_len - 1, *aligned.shape[2:]))
    cols = torch.arange(width, device=aligned.device)
    pos = (sb.comp_start[:, None] - 1 + cols[None, :]).clamp(max=full_len - 2)  # [B, C]
    valid = sb.comp_mask.bool()
    rows = torch.arange(batch, device=aligned.device)[:, None].expand(batch, width)
    out[rows[valid], pos[valid]] = aligned[valid]
    return out


def shared_prompt_logits(model: Any, sb: SplitBatch) -> torch.Tensor:
    """Next-token logits of a causal LM aligned with the program tokens, [B, C, V]: entry
    ``j`` predicts ``sb.comp_ids[:, j]``. Each group's prompt is encoded once. Map per-token
    results to the full layout with :func:`to_full`."""
    out, cache = forward_cached(model, None, input_ids=sb.prompt_ids, attention_mask=sb.prompt_mask)
    groups = torch.arange(len(sb.prompt_len), device=sb.prompt_ids.device)
    last = out.logits[groups, sb.prompt_len - 1]  # [G, V]: predicts each program's first token
    prog, _ = forward_cached(model, _expand_cache(cache, sb.row_group), **_program_inputs(sb))
    return torch.cat([last.index_select(0, sb.row_group)[:, None], prog.logits[:, :-1]], dim=1)  # [B, C, V]


def shared_prompt_hidden(decoder: Any, sb: SplitBatch) -> torch.Tensor:
    """Final hidden states of a decoder stack (a causal LM's ``base_model``) aligned with the
    program tokens, [B, C, H]: entry ``j`` is the state that predicts ``sb.comp_ids[:, j]``
    (the head applied to it gives :func:`shared_prompt_logits`). Each group's prompt is
    encoded once."""
    out, cache = forward_cached(decoder, None, input_ids=sb.prompt_ids, attention_mask=sb.prompt_mask)
    groups = torch.arange(len(sb.prompt_len), device=sb.prompt_ids.device)
    last = out.last_hidden_state[groups, sb.prompt_len - 1]  # [G, H]: predicts each program's first token
    prog, _ = forward_cached(decoder, _expand_cache(cache, sb.row_group), **_program_inputs(sb))
    return torch.cat([last.index_select(0, sb.row_group)[:, None], prog.last_hidden_state[:, :-1]], dim=1)


def shared_prompt_values(critic: Any, sb: SplitBatch, full_len: int) -> torch.Tensor:
    """Critic values (an :class:`agents.ppo.critic.Critic`) in the shifted full layout
    [B, S−1]: the value of the state in which each action token was chosen."""
    prm = critic.prm
    raw_p, cache = prm(input_ids=sb.prompt_ids, attention_mask=sb.prompt_mask, use_cache=True)
    groups = torch.arange(len(sb.prompt_len), device=sb.prompt_ids.device)
    last = raw_p[groups, sb.prompt_len - 1]  # [G]: the state before the first action
    inputs = _program_inputs(sb)
    raw_c, _ = prm(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   position_ids=inputs["position_ids"], cache=_expand_cache(cache, sb.row_group))  # fmt: skip
    aligned = torch.cat([last.index_select(0, sb.row_group)[:, None], raw_c[:, :-1]], dim=1)  # [B, C]
    return to_full(critic.values_from_raw(aligned).float(), sb, full_len)


__all__ = ["SplitBatch", "shared_prompt_hidden", "shared_prompt_logits", "shared_prompt_values", "split_by_prompt",
           "to_full"]
