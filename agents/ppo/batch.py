"""PPO's data: the episodes of one iteration, the typed batch they become, and its forward pass.

One iteration of :class:`agents.ppo.trainer.PPOTrainer` turns the vector env's episodes into
a :class:`PPOBatch` (as Stable-Baselines3's ``RolloutBuffer`` turns steps into
``RolloutBufferSamples``):

* :class:`Episode` — one sampled program: the lines sent to the env, the token ids the
  policy drew for them (as the sampler's cache held them: the pieces decode to exactly the
  lines the env ran, blank lines and indentation included, whatever the tokenizer family),
  the ids drawn after the last line and the id that ended the program, and the rewards the env named
  (``info["line_rewards"]`` per line, the unit-test and closing terms at the end). Nothing
  here recomputes a reward term: the env owns them.
* :meth:`PPOBatch.from_episodes` — the episodes as right-padded tensors in the "shifted"
  layout: position ``j`` of every per-action tensor is the prediction of token ``j + 1`` from
  the prefix ``ids[: j + 1]``. ``action_mask[:, j]`` marks tokens the policy generated;
  ``policy_mask`` narrows it to the tokens the policy drew *exactly as they stand* (it leaves
  out the newline forced after a line cut at ``max_line_tokens``, an EOS drawn mid-line under
  a re-encoding sampler, and lines a re-encoding sampler replaced: importance ratios on ids
  the policy never sampled are meaningless). Such tokens keep their place in the sequence,
  their rewards and their values (GAE runs over ``action_mask``); the policy loss and the KL
  penalty use ``policy_mask``. The value of the state in which token ``j + 1`` was chosen is
  read at hidden state ``j``: for a line's last token that is where the PRM reads the line's
  score, so a PRM-initialised critic starts aligned.
* :meth:`PPOBatch.with_scores` — the same batch with the no-grad pass's tensors (old and
  reference log-probs, values, token rewards, advantages, returns) attached; a new object,
  never an in-place edit.
* :meth:`PPOBatch.minibatches` — one epoch's minibatches (shuffled rows, or shuffled whole
  prompt groups when prompts are shared), each trimmed to its longest row.
* :func:`forward` — the one forward pass of a policy (log-probs and entropy of the batch's
  targets) or a critic (values), hiding how prompts are encoded: with ``shared_prompt`` each
  group's prompt is encoded once (:mod:`agents.ppo.shared_prompt`), with the same per-token
  results as encoding every row whole. Log-probs come either from the logits of every
  position, or (``chunk_tokens``, a ``value_head``, or a :class:`PolicyModel`) from the
  decoder's hidden states at the generated positions only, the output head applied a chunk
  at a time (:func:`generated_stats`): the same values and gradients without a
  ``[batch, seq, vocab]`` tensor, and a value head on the same hidden states for a critic
  that shares the policy's backbone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from agents.ppo.critic import Critic, critic_values
from agents.ppo.losses import token_logprobs
from agents.ppo.shared_prompt import (
    SplitBatch,
    shared_prompt_hidden,
    shared_prompt_logits,
    shared_prompt_values,
    split_by_prompt,
    to_full,
)
from codegym.constants import SUBMIT
from codegym.evaluation import prefix_accuracy
from codegym.lm import token_logprobs_chunked
from codegym.memory import checkpointed, checkpointing_active, decoder_and_head
from codegym.rollout import EpisodeRecord, SamplerAgent
from codegym.tasks.base import Task
from codegym.tokenization import encode_context, encode_lines, join_pieces


@dataclass
class Episode:
    """One sampled program and what the env said about it."""

    task: Task
    context: str
    lines: list[str] = field(default_factory=list)
    """Lines sent to the env (an invalid last line included, see ``invalid``)."""
    line_rewards: list[float] = field(default_factory=list)
    """Dense reward of each line as the env attributes it (``info["line_rewards"]``), × the
    trainer's ``dense_coef``."""
    prm_scores: list[float | None] = field(default_factory=list)
    """Per-line line score from info (``None`` for neutral lines or without a scorer)."""
    final_dense: float = 0.0
    """Dense reward of the episode's end (the closing term ``−Φ(last)`` of the env's closed
    shaping), × ``dense_coef``; placed on the final token with the unit-test reward."""
    test_reward: float = 0.0
    """Unit-test reward (binary or fraction), as the env paid it."""
    passed: bool = False
    """The harness declared a pass."""
    eos: bool = False
    """The policy ended the program with an EOS token (a token to train on: ``end_id``)."""
    truncated: bool = False
    """The env truncated at ``max_lines`` or the token budget ran out."""
    invalid: bool = False
    """The last line was rejected by the env (counts as a failure, unit-test reward 0)."""
    status: str = ""
    """Execution status (``passed``, ``failed``, ``error``, ...)."""
    gen_tokens: int = 0
    """Tokens of the program's lines as the sampler's cache held them, + EOS."""
    line_ids: list[list[int]] | None = None
    """Per line: the token ids the sampler's cache held (the drawn ids, or the rule's for a
    re-encoded line). ``None``: encode ``lines`` by the tokenisation rule."""
    line_forced: list[int] | None = None
    """Per line: trailing ids of ``line_ids`` the sampler forced (a newline after a cut line);
    they are not actions. ``None``: none."""
    line_exact: list[bool] | None = None
    """Per line: ``line_ids`` are the ids the policy drew (see
    :attr:`codegym.sampling.LineSampler.line_exact`); a re-encoded line stays in the sequence
    but is left out of the policy loss and the KL. ``None``: every line counts as drawn."""
    eos_exact: bool = True
    """The EOS follows the ids as the policy drew them (False: drawn mid-line under a
    re-encoding sampler, which re-encoded the line; it is then left out of the policy loss)."""
    tail_ids: list[int] = field(default_factory=list)
    """Ids the policy drew after the last line and before the EOS (the program's final
    newline with a ``newline_first`` tokenizer, see :mod:`codegym.tokenization`); actions."""
    end_id: int | None = None
    """The id that ended the program (``eos``): the tokenizer's EOS, another EOS id of the
    generation config (instruct models) or another special token. ``None``: the tokenizer's EOS."""

    @property
    def num_lines(self) -> int:
        """Lines written."""
        return len(self.lines)

    @property
    def prefix_accuracy(self) -> float:
        """Prefix accuracy of the program (:func:`codegym.evaluation.prefix_accuracy`)."""
        return prefix_accuracy(self.lines, self.task.solution_lines, self.passed)


def episodes_from_records(records: Sequence[EpisodeRecord], agent: SamplerAgent, dense_coef: float = 1.0) -> list[Episode]:
    """PPO's episodes from one wave of rollout records and the sampling agent that wrote them.

    Rewards come from the env as it named them: each accepted line's
    ``info["line_rewards"]`` entry, and on the final token the last step's ``test`` and
    ``shaping_close`` terms (dense parts × ``dense_coef``). A line the env rejected as invalid
    ends the episode; it stays in the program (the policy drew it and is trained on it), with
    line reward 0 and the failure on its last token. The token ids are those the sampler's
    cache held for each slot (:attr:`codegym.sampling.LineSampler.slots`): the context's, each
    line's piece, the ids drawn after the last line and the drawn end id.
    """
    out = []
    for rec in records:
        slot = agent.sampler.slots[rec.slot]
        cause = agent.submit_cause[rec.slot]
        lines, rewards, scores = list(rec.lines), [dense_coef * r for r in rec.line_rewards], list(rec.prm_scores)
        if rec.invalid and rec.last_action != SUBMIT:
            lines.append(rec.last_action)
            rewards.append(0.0)
            scores.append(None)
        terms = rec.final_terms
        n = len(lines)
        exact = list(slot.line_exact[:n]) + [False] * max(0, n - len(slot.line_exact))
        eos = rec.last_action == SUBMIT and cause == "eos"
        out.append(Episode(
            task=rec.task, context=agent.contexts[rec.slot], lines=lines, line_rewards=rewards,
            prm_scores=scores, final_dense=dense_coef * terms.get("shaping_close", 0.0),
            test_reward=terms.get("test", 0.0), passed=rec.passed,
            eos=eos, truncated=rec.truncated or cause == "budget",
            invalid=rec.invalid, status=rec.status, gen_tokens=agent.gen_tokens[rec.slot],
            line_ids=[list(x) for x in slot.line_ids[:n]] if len(slot.line_ids) >= n else None,
            line_forced=list(slot.line_forced[:n]) if len(slot.line_ids) >= n else None,
            line_exact=exact, eos_exact=bool(slot.eos_exact),
            tail_ids=list(slot.tail_ids) if eos else [], end_id=slot.end_id if eos else None,
        ))  # fmt: skip
    return out


#: The fields :meth:`PPOBatch.with_scores` fills (``None`` before the advantage phase).
SCORED = ("old_logprobs", "ref_logprobs", "entropy", "values", "kl", "rewards", "advantages", "returns")


@dataclass(frozen=True)
class PPOBatch:
    """One iteration's episodes as tensors (see the module docstring for the shifted layout).

    Shapes: B episodes, S = longest sequence, L = most lines. The per-action tensors are
    [B, S − 1]. The scored fields are ``None`` until :meth:`with_scores`.
    """

    input_ids: torch.Tensor  # (B, S) long, right-padded with the pad id
    attention_mask: torch.Tensor  # (B, S) long
    action_mask: torch.Tensor  # (B, S-1) bool, True where input_ids[:, 1:] was generated
    policy_mask: torch.Tensor  # (B, S-1) bool, action tokens the policy drew as they stand
    line_end: torch.Tensor  # (B, L) long, shifted index of each line's last token (-1 pad)
    line_rewards: torch.Tensor  # (B, L) float, dense reward per line
    final_reward: torch.Tensor  # (B,) float, unit-test reward + closing dense term
    final_dense: torch.Tensor  # (B,) float, the closing dense term alone (−Φ(last) × dense_coef; 0 unshaped)
    passed: torch.Tensor  # (B,) bool
    prompt_len: torch.Tensor  # (B,) long, tokens of the row's prompt (its context)
    group: torch.Tensor  # (B,) long, equal for rows with the same context (one task's samples)
    old_logprobs: torch.Tensor | None = None  # (B, S-1) log π_old of the targets
    ref_logprobs: torch.Tensor | None = None  # (B, S-1) log π_ref of the targets
    entropy: torch.Tensor | None = None  # (B, S-1) policy entropy at each position
    values: torch.Tensor | None = None  # (B, S-1) V of the state each token was chosen in
    kl: torch.Tensor | None = None  # (B, S-1) log π_old − log π_ref on policy_mask, else 0
    rewards: torch.Tensor | None = None  # (B, S-1) token rewards (line, final, −β·KL)
    advantages: torch.Tensor | None = None  # (B, S-1) GAE advantages
    returns: torch.Tensor | None = None  # (B, S-1) advantages + values

    # ------------------------------------------------------------------ views
    @property
    def targets(self) -> torch.Tensor:
        """(B, S-1) the token each position predicts: ``input_ids[:, 1:]``."""
        return self.input_ids[:, 1:]

    @property
    def size(self) -> int:
        """Number of episodes (rows)."""
        return int(self.input_ids.shape[0])

    @property
    def num_action_tokens(self) -> int:
        """Generated tokens in the batch (``action_mask.sum()``)."""
        return int(self.action_mask.sum())

    def to(self, device: torch.device | str) -> PPOBatch:
        """The batch with every tensor on ``device``."""
        return dataclasses.replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    def with_scores(self, **scored: torch.Tensor) -> PPOBatch:
        """A new batch with scored fields (:data:`SCORED`) set."""
        unknown = sorted(set(scored) - set(SCORED))
        if unknown:
            raise ValueError(f"unknown scored fields {unknown}; valid: {list(SCORED)}")
        return dataclasses.replace(self, **scored)

    def select(self, idx: torch.Tensor) -> PPOBatch:
        """Rows ``idx`` of every tensor, trimmed to the selected rows' longest sequence."""
        rows = {k: v[idx] for k, v in self._tensors().items()}
        length = int(rows["attention_mask"].sum(dim=1).max())
        for name, tensor in rows.items():
            if name in ("input_ids", "attention_mask"):
                rows[name] = tensor[:, :length]
            elif tensor.dim() == 2 and name not in ("line_end", "line_rewards"):
                rows[name] = tensor[:, : length - 1]  # a per-action tensor
        return dataclasses.replace(self, **rows)

    def minibatches(self, num: int, generator: torch.Generator, by_group: bool = False) -> Iterator[PPOBatch]:
        """One epoch's minibatches: ``num`` chunks of shuffled rows (rows that do not fill a
        whole chunk are left out), or with ``by_group`` of shuffled whole prompt groups (so
        each minibatch encodes few prompts)."""
        for idx in self.minibatch_indices(num, generator, by_group):
            yield self.select(idx.to(self.input_ids.device))

    def minibatch_indices(self, num: int, generator: torch.Generator, by_group: bool = False) -> list[torch.Tensor]:
        """Row indices of :meth:`minibatches` (CPU tensors)."""
        if by_group:
            rows = self.group.cpu()
            groups = torch.unique(rows)
            order = groups[torch.randperm(len(groups), generator=generator)]
            chunks = torch.tensor_split(order, min(num, len(order)))
            return [torch.nonzero(torch.isin(rows, c)).squeeze(1) for c in chunks if len(c)]
        n = self.size
        mb_size = max(1, n // num)
        perm = torch.randperm(n, generator=generator)
        return [perm[lo : lo + mb_size] for lo in range(0, n - mb_size + 1, mb_size)]

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    # ---------------------------------------------------------------- building
    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode], tokenizer: Any) -> PPOBatch:
        """Episodes as a right-padded batch: the prompt by the tokenisation rule, the lines as
        the sampler's cache held them (``line_ids``; by the rule when absent), then, when the
        policy ended the program, the ids it drew after the last line and its end id. A line
        rewards sits on its piece's last token (a blank line with an empty piece shares the
        end of the line before it: the rewards add up)."""
        if not episodes:
            raise ValueError("PPOBatch.from_episodes needs at least one episode")
        eos = int(tokenizer.eos_token_id)
        pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
        encoded = [_encode_episode(ep, tokenizer, eos) for ep in episodes]
        batch, length = len(episodes), max(len(ids) for ids, _, _ in encoded)
        n_lines = max(1, max(ep.num_lines for ep in episodes))
        out = {
            "input_ids": torch.full((batch, length), pad, dtype=torch.long),
            "attention_mask": torch.zeros(batch, length, dtype=torch.long),
            "action_mask": torch.zeros(batch, length - 1, dtype=torch.bool),
            "policy_mask": torch.zeros(batch, length - 1, dtype=torch.bool),
            "line_end": torch.full((batch, n_lines), -1, dtype=torch.long),
            "line_rewards": torch.zeros(batch, n_lines),
        }
        for b, (ep, enc) in enumerate(zip(episodes, encoded)):
            _fill_row(out, b, ep, *enc)
        if not bool(out["action_mask"].any(dim=1).all()):
            raise ValueError("an episode generated no token (empty program without EOS)")
        groups: dict[str, int] = {}
        return cls(
            **out,
            final_reward=torch.tensor([ep.test_reward + ep.final_dense for ep in episodes], dtype=torch.float32),
            final_dense=torch.tensor([ep.final_dense for ep in episodes], dtype=torch.float32),
            passed=torch.tensor([ep.passed for ep in episodes], dtype=torch.bool),
            prompt_len=torch.tensor([p for _, p, _ in encoded], dtype=torch.long),
            group=torch.tensor([groups.setdefault(ep.context, len(groups)) for ep in episodes], dtype=torch.long),
        )


def _encode_episode(ep: Episode, tokenizer: Any, eos: int) -> tuple[list[int], int, list[int]]:
    """``(ids, prompt_len, line_ends)`` of one episode (line_ends: ids index of each line's
    last token)."""
    pieces = ep.line_ids if ep.line_ids is not None else encode_lines(tokenizer, ep.lines)
    enc = join_pieces(encode_context(tokenizer, ep.context), pieces)
    end = [*ep.tail_ids, int(ep.end_id if ep.end_id is not None else eos)] if ep.eos else []
    return enc.input_ids + end, enc.prompt_len, enc.line_ends


def _fill_row(out: dict[str, torch.Tensor], b: int, ep: Episode, ids: list[int], prompt_len: int, ends: list[int]) -> None:
    """Row ``b`` of the batch tensors: ids, masks, line ends and line rewards."""
    out["input_ids"][b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    out["attention_mask"][b, : len(ids)] = 1
    out["action_mask"][b, prompt_len - 1 : len(ids) - 1] = True
    policy = out["policy_mask"]
    policy[b, prompt_len - 1 : len(ids) - 1] = True
    first = prompt_len  # ids index of the line's first token
    for m, last in enumerate(ends):
        out["line_end"][b, m] = last - 1
        out["line_rewards"][b, m] = ep.line_rewards[m] if m < len(ep.line_rewards) else 0.0
        if ep.line_exact is not None and not (m < len(ep.line_exact) and ep.line_exact[m]):
            policy[b, first - 1 : last] = False  # re-encoded line: not drawn as is
        elif ep.line_forced is not None and m < len(ep.line_forced) and ep.line_forced[m]:
            policy[b, last - ep.line_forced[m] : last] = False  # forced newline
        first = last + 1
    if ep.eos and not ep.eos_exact:
        policy[b, len(ids) - 2] = False


class ForwardOutput(NamedTuple):
    """What :func:`forward` computes, in the shifted layout [B, S − 1]; ``None`` for what the
    model does not give (a critic has no log-probs, a policy no values)."""

    logprobs: torch.Tensor | None  # (B, S-1) log π(target) under softmax(logits / temperature)
    entropy: torch.Tensor | None  # (B, S-1) policy entropy (zeros when not asked for)
    values: torch.Tensor | None  # (B, S-1) value of the state each token was chosen in


def split_batch(batch: PPOBatch, pad_id: int) -> SplitBatch:
    """The batch split into one prompt per group and one program per row (shared prompts)."""
    return split_by_prompt(batch.input_ids, batch.attention_mask, batch.prompt_len, batch.group, pad_id)


class PolicyModel(nn.Module):
    """A causal-LM policy as one module whose forward gives, on the generated positions only,
    the log-probs of the targets, the entropy and the final hidden states (flat, in the row-major
    order of the generated positions: see :func:`generated_stats`).

    Data-parallel engines (DDP, FSDP) synchronise gradients only for computation inside the
    forward of the module they wrap; this module puts the vocabulary projection (done here a
    chunk at a time) inside it. :func:`forward` accepts it (wrapped or not) in place of the
    causal LM.

    Args:
        lm: The causal LM (LoRA adapters injected or not).
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, action_mask: torch.Tensor,
                split: SplitBatch | None = None, **options: Any) -> GeneratedStats:  # fmt: skip
        """:func:`generated_stats` of the wrapped LM (``options``: its keyword arguments)."""
        return generated_stats(self.lm, input_ids, attention_mask, action_mask, split, **options)


class GeneratedStats(NamedTuple):
    """Per generated position, flat ([N] or [N, H], N = generated tokens of the batch)."""

    logprobs: torch.Tensor | None  # (N,) fp32
    entropy: torch.Tensor | None  # (N,) fp32 (zeros when not asked for)
    hidden: torch.Tensor | None  # (N, H) final hidden state that predicts each target


def generated_stats(
    lm: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    action_mask: torch.Tensor,
    split: SplitBatch | None = None,
    *,
    temperature: float = 1.0,
    entropy: bool = True,
    chunk_tokens: int | None = None,
    logprobs: bool = True,
    hidden: bool = False,
) -> GeneratedStats:
    """Log-probs, entropy and hidden states of a causal LM at the generated positions only.

    The decoder stack runs over the batch (each prompt once with ``split``); the output head
    is applied to the final hidden states of the generated positions ``chunk_tokens`` at a
    time (:func:`codegym.lm.token_logprobs_chunked`, recomputed in the backward pass), so no
    ``[batch, seq, vocab]`` tensor exists. The order of the N positions is that of
    ``action_mask[action_mask]`` (or of ``split.comp_mask`` with ``split``, the same tokens).

    Args:
        lm: A transformers causal LM.
        input_ids: (B, S) ids; attention_mask: (B, S); action_mask: (B, S-1) generated targets.
        split: The batch split by prompt (:func:`split_batch`), or None (rows whole).
        temperature: Temperature of the log-probs.
        entropy: Compute the entropy (else zeros).
        chunk_tokens: Positions per chunk of the head (None: all at once).
        logprobs: Compute log-probs and entropy (else None: values only).
        hidden: Return the hidden states (for a value head).
    """
    decoder, head = decoder_and_head(lm)
    with checkpointed(decoder):
        if split is not None:
            if torch.is_grad_enabled() and checkpointing_active(decoder):
                raise ValueError("gradient checkpointing drops the KV cache that shared-prompt encoding "
                                 "continues from: pass split=None when training with checkpointing")  # fmt: skip
            states = shared_prompt_hidden(decoder, split)  # (B, C, H)
            sel, targets = split.comp_mask.bool(), split.comp_ids
        else:
            out = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            states = out.last_hidden_state[:, :-1]  # (B, S-1, H)
            sel, targets = action_mask, input_ids[:, 1:]
    flat = states[sel]  # (N, H)
    lp = ent = None
    if logprobs:
        n = max(1, flat.shape[0])
        lp, ent = token_logprobs_chunked(flat, head, targets[sel], temperature, chunk_tokens or n, entropy)
    return GeneratedStats(lp, ent, flat if hidden else None)


def forward(
    model: Any,
    batch: PPOBatch,
    *,
    temperature: float = 1.0,
    entropy: bool = True,
    split: SplitBatch | None = None,
    chunk_tokens: int | None = None,
    value_head: nn.Module | None = None,
    logprobs: bool = True,
    train_backbone: bool = True,
) -> ForwardOutput:
    """The forward pass of ``model`` over ``batch``: log-probs and entropy of the targets for a
    causal LM policy, values for a :class:`~agents.ppo.critic.Critic` (DDP-wrapped or not).

    Two ways to compute a policy's log-probs:

    * **whole-vocabulary** (a causal LM, no ``chunk_tokens``, no ``value_head``): the logits
      of every position, ``[B, S, V]``, then the log-softmax;
    * **generated positions, chunked** (``chunk_tokens`` given, a ``value_head`` given, or a
      :class:`PolicyModel`): the decoder's hidden states, then the head on the generated
      positions only, ``chunk_tokens`` at a time (:func:`generated_stats`). The same values
      and gradients to float rounding, at a fraction of the memory; 0 at other positions.

    Args:
        model: A causal LM, a :class:`PolicyModel` (what data-parallel engines wrap), or a
            critic.
        batch: The batch.
        temperature: Temperature the policy's log-probs refer to (that of the rollout).
        entropy: Compute the policy entropy (else zeros).
        split: The batch split by prompt (:func:`split_batch`): each group's prompt is encoded
            once; the per-token results are those of encoding every row whole, at the action
            positions (0 elsewhere). ``None``: every row whole.
        chunk_tokens: Generated positions per chunk of the output head (chunked path).
        value_head: A :class:`~agents.ppo.critic.ValueHead` read on the policy's own hidden
            states (a critic that shares the policy's backbone): ``values`` are filled.
        logprobs: Compute log-probs and entropy (False: only the values of ``value_head``).
        train_backbone: False: the policy's backbone runs without autograd, so only
            ``value_head`` gets gradients.
    """
    length = batch.input_ids.shape[1]
    inner = getattr(model, "module", model)
    if isinstance(inner, Critic):
        if split is not None:
            return ForwardOutput(None, None, shared_prompt_values(inner, split, length))
        values = critic_values(model, batch.input_ids, batch.attention_mask)[:, :-1]  # (B, S-1)
        return ForwardOutput(None, None, values)
    if chunk_tokens is not None or value_head is not None or isinstance(inner, PolicyModel):
        return _forward_generated(model, batch, temperature, entropy, split, chunk_tokens, value_head, logprobs, train_backbone)
    if split is not None:
        logits = shared_prompt_logits(model, split)  # (B, C, V)
        stats = token_logprobs(logits, split.comp_ids, temperature, entropy=entropy)
        return ForwardOutput(to_full(stats.logprobs, split, length), to_full(stats.entropy, split, length), None)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, S, V)
    stats = token_logprobs(logits[:, :-1], batch.targets, temperature, entropy=entropy)
    return ForwardOutput(stats.logprobs, stats.entropy, None)


def _forward_generated(
    model: Any, batch: PPOBatch, temperature: float, entropy: bool, split: SplitBatch | None,
    chunk_tokens: int | None, value_head: nn.Module | None, logprobs: bool, train_backbone: bool,
) -> ForwardOutput:  # fmt: skip
    """:func:`forward`'s chunked path: stats on the generated positions, placed in [B, S-1]."""
    inner = getattr(model, "module", model)
    options = {"temperature": temperature, "entropy": entropy, "chunk_tokens": chunk_tokens,
               "logprobs": logprobs, "hidden": value_head is not None}  # fmt: skip
    with contextlib.nullcontext() if train_backbone else torch.no_grad():
        if isinstance(inner, PolicyModel):
            stats = model(batch.input_ids, batch.attention_mask, batch.action_mask, split, **options)
        elif model is not inner:
            raise ValueError(f"a {type(model).__name__}-wrapped causal LM cannot run chunked log-probs outside "
                             "its forward: wrap the LM in agents.ppo.batch.PolicyModel before the engine does")  # fmt: skip
        else:
            stats = generated_stats(model, batch.input_ids, batch.attention_mask, batch.action_mask, split, **options)
    values = value_head(stats.hidden) if value_head is not None else None  # (N,)
    place = _placer(batch, split)
    return ForwardOutput(*(place(x) if x is not None else None for x in (stats.logprobs, stats.entropy, values)))


def _placer(batch: PPOBatch, split: SplitBatch | None) -> Any:
    """A function putting flat per-generated-position values (N,) into the [B, S-1] layout."""
    length = batch.input_ids.shape[1]

    def place(flat: torch.Tensor) -> torch.Tensor:
        if split is None:
            return torch.zeros(batch.action_mask.shape, dtype=flat.dtype, device=flat.device).masked_scatter(
                batch.action_mask, flat
            )  # (B, S-1)
        aligned = torch.zeros(split.comp_mask.shape, dtype=flat.dtype, device=flat.device)  # (B, C)
        return to_full(aligned.masked_scatter(split.comp_mask.bool(), flat), split, length)

    return place


__all__ = ["SCORED", "Episode", "ForwardOutput", "GeneratedStats", "PPOBatch", "PolicyModel", "episodes_from_records",
           "forward", "generated_stats", "split_batch"]
