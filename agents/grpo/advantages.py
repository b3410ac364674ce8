"""Critic-free advantages over groups of samples: GRPO, Dr. GRPO, RLOO and process supervision.

Pure functions of tensors (no module state, no RNG), unit-tested against hand-computed values
in ``tests/agents/grpo/test_grpo_advantages.py``. A *group* is the ``samples_per_prompt``
programs sampled for one task in one iteration; each row of a batch carries its group id.

* :func:`group_normalise` — one value per item, compared within its group: the item minus the
  group's mean (GRPO, Shao et al. 2024, "DeepSeekMath") or minus the mean of the *other* items
  (RLOO, Ahmadian et al. 2024, "Back to Basics"), optionally divided by the group's standard
  deviation (GRPO divides; Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like Training",
  does not, since the division up-weights groups whose samples barely differ).
* :func:`outcome_advantages` — *outcome supervision*: the unit-test reward of each program,
  normalised within its group; every token of the program gets it.
* :func:`process_line_advantages` — *process supervision* (DeepSeekMath §4.1.3): every line's
  reward, normalised by the mean and std of **all** line rewards of the group, and each line's
  advantage = the sum of the normalised rewards of that line and the lines after it.
* :func:`tokens_from_lines` — a per-line value on every token of its line (PPO's line-end
  rule: a line's tokens run up to and including its last token, ``line_end``).
* :func:`token_advantages` — the advantage of every token in one of the modes ``outcome``,
  ``process`` or ``outcome+process``.
* :func:`kl_to_go` — the KL penalty's return-to-go, for a KL placed in the reward as PPO does.

Layout: as :class:`agents.ppo.batch.PPOBatch` — [B, T] per-token tensors in the shifted layout,
[B, L] per-line tensors with ``line_end`` the shifted index of each line's last token (−1 pad).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

Baseline = Literal["mean", "leave-one-out"]
AdvantageMode = Literal["outcome", "process", "outcome+process"]
ADVANTAGE_MODES = ("outcome", "process", "outcome+process")
BASELINES = ("mean", "leave-one-out")


def _group_index(groups: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group index ``0 .. G-1`` of every item, and G."""
    if groups.dim() != 1:
        raise ValueError(f"groups must be a [N] tensor of group ids, got shape {tuple(groups.shape)}")
    _, index = torch.unique(groups, return_inverse=True)
    return index, int(index.max()) + 1 if index.numel() else 0


def group_normalise(
    values: torch.Tensor,
    groups: torch.Tensor,
    *,
    baseline: Baseline = "mean",
    scale_by_std: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Each value compared with the other values of its group.

    ``baseline="mean"``: ``x − mean(group)``; ``"leave-one-out"``: ``x − mean(group without x)``
    (= ``n / (n − 1) · (x − mean)``). With ``scale_by_std`` the result is divided by
    ``std(group) + eps`` (the sample standard deviation, Bessel-corrected, as TRL's GRPO).
    An item alone in its group gets 0 (nothing to compare it with).

    Args:
        values: [N] float values (rewards of programs, or of lines).
        groups: [N] group id of each value (any integers).
        baseline: ``"mean"`` (GRPO) or ``"leave-one-out"`` (RLOO).
        scale_by_std: Divide by the group's std (GRPO) or not (Dr. GRPO, RLOO).
        eps: Added to the std before dividing.

    Returns:
        [N] float advantages.
    """
    if values.shape != groups.shape:
        raise ValueError(f"values {tuple(values.shape)} and groups {tuple(groups.shape)} must share one [N] shape")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    x = values.float()
    index, num = _group_index(groups)
    count = torch.zeros(num, device=x.device).index_add_(0, index, torch.ones_like(x))  # (G,)
    total = torch.zeros(num, device=x.device).index_add_(0, index, x)  # (G,)
    n = count[index]  # (N,)
    mean = total[index] / n  # (N,)
    centred = x - mean
    many = n > 1
    if baseline == "leave-one-out":
        centred = torch.where(many, centred * n / (n - 1).clamp(min=1.0), torch.zeros_like(x))
    if scale_by_std:
        sq = torch.zeros(num, device=x.device).index_add_(0, index, (x - mean) ** 2)  # (G,)
        std = torch.sqrt(sq[index] / (n - 1).clamp(min=1.0))  # (N,)
        centred = centred / (std + eps)
    return torch.where(many, centred, torch.zeros_like(x))


def outcome_advantages(
    rewards: torch.Tensor,
    groups: torch.Tensor,
    *,
    baseline: Baseline = "mean",
    scale_by_std: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Outcome supervision: each program's reward normalised within its group.

    Args:
        rewards: [B] outcome (unit-test) reward of each program.
        groups: [B] group id of each program (its task in this iteration).
        baseline, scale_by_std, eps: As for :func:`group_normalise`.

    Returns:
        [B] advantage of each program (every token of the program gets it). A group whose
        programs all got the same reward (all failed, or all passed) gets 0.
    """
    return group_normalise(rewards, groups, baseline=baseline, scale_by_std=scale_by_std, eps=eps)


def process_line_advantages(
    line_rewards: torch.Tensor,
    line_mask: torch.Tensor,
    groups: torch.Tensor,
    *,
    baseline: Baseline = "mean",
    scale_by_std: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Process supervision: normalised line rewards, summed from each line to the end.

    Every scored line's reward is normalised by the mean (and std) of all scored line rewards
    in its group (:func:`group_normalise` over the group's lines); a line's advantage is the
    sum of the normalised rewards of that line and of every later line of its program.
    Unscored lines (comments, blank lines, an invalid last line, padding) add nothing, but
    their advantage still sums the scored lines after them.

    Args:
        line_rewards: [B, L] reward of each line (a PRM's score or its potential's delta).
        line_mask: [B, L] bool, lines that have a reward.
        groups: [B] group id of each program.
        baseline, scale_by_std, eps: As for :func:`group_normalise` (over lines).

    Returns:
        [B, L] advantage of each line (0 after a program's last scored line).
    """
    if line_rewards.shape != line_mask.shape or line_rewards.dim() != 2:
        raise ValueError(
            f"line_rewards {tuple(line_rewards.shape)} and line_mask {tuple(line_mask.shape)} must share one [B, L] shape"
        )
    if groups.shape != line_rewards.shape[:1]:
        raise ValueError(f"groups must have shape [{line_rewards.shape[0]}], got {tuple(groups.shape)}")
    mask = line_mask.bool()
    line_groups = groups.unsqueeze(1).expand_as(mask)[mask]  # (N,) group of every scored line
    normed = group_normalise(line_rewards.float()[mask], line_groups, baseline=baseline,
                             scale_by_std=scale_by_std, eps=eps)  # fmt: skip
    per_line = torch.zeros(mask.shape, dtype=torch.float32, device=line_rewards.device).masked_scatter(mask, normed)
    return per_line.flip(1).cumsum(1).flip(1)  # (B, L) sum over this line and the later ones


def tokens_from_lines(line_values: torch.Tensor, line_end: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each line's value on every token of that line.

    Token ``p`` belongs to the first line ``m`` with ``line_end[m] >= p`` (a line's tokens end
    at its last token, the rule PPO places line rewards by); tokens after a row's last line
    (its EOS) belong to no line and get 0, as do positions outside ``mask``. A line with no
    tokens of its own (its ids drawn within the previous line's last token, e.g. a ``"\n\n"``
    token) repeats the previous line's end and takes no token.

    Args:
        line_values: [B, L] value of each line.
        line_end: [B, L] long, shifted index of each line's last token, non-decreasing; −1 pads.
        mask: [B, T] bool, the row's action tokens.

    Returns:
        [B, T] float.
    """
    if line_values.shape != line_end.shape or line_end.shape[0] != mask.shape[0]:
        raise ValueError(
            f"line_values {tuple(line_values.shape)}, line_end {tuple(line_end.shape)} and mask "
            f"{tuple(mask.shape)} must share B and L"
        )
    batch, length = mask.shape
    has_line = line_end >= 0  # (B, L)
    ends = torch.where(has_line, line_end, torch.full_like(line_end, length))  # padding sorts last
    if bool((ends[:, 1:] < ends[:, :-1]).any()):
        raise ValueError("line_end must not decrease along a row (then -1 padding)")
    positions = torch.arange(length, device=mask.device).expand(batch, length).contiguous()  # (B, T)
    idx = torch.searchsorted(ends.contiguous(), positions)  # (B, T) first line ending at or after p
    values = torch.cat([line_values.float(), torch.zeros(batch, 1, device=line_values.device)], dim=1)
    valid = torch.cat([has_line, torch.zeros(batch, 1, dtype=torch.bool, device=mask.device)], dim=1)
    out = values.gather(1, idx)
    keep = mask.bool() & valid.gather(1, idx)
    return torch.where(keep, out, torch.zeros_like(out))


class Advantages(NamedTuple):
    """What :func:`token_advantages` computes."""

    tokens: torch.Tensor  # (B, T) advantage of every action token (0 elsewhere)
    outcome: torch.Tensor  # (B,) outcome advantage of each program (0 in process mode)
    lines: torch.Tensor  # (B, L) process advantage of each line (0 in outcome mode)


def token_advantages(
    mode: AdvantageMode,
    outcome_rewards: torch.Tensor,
    line_rewards: torch.Tensor,
    line_mask: torch.Tensor,
    line_end: torch.Tensor,
    groups: torch.Tensor,
    action_mask: torch.Tensor,
    *,
    baseline: Baseline = "mean",
    scale_by_std: bool = True,
    process_coef: float = 1.0,
    eps: float = 1e-4,
) -> Advantages:
    """The advantage of every token, in one of the modes.

    * ``"outcome"``: :func:`outcome_advantages` on every token of the program;
    * ``"process"``: :func:`process_line_advantages` on the tokens of each line;
    * ``"outcome+process"``: the outcome advantage + ``process_coef`` × the process one.

    Args:
        mode: ``"outcome"``, ``"process"`` or ``"outcome+process"``.
        outcome_rewards: [B] unit-test reward of each program.
        line_rewards: [B, L] reward of each line; line_mask: [B, L] lines that have one.
        line_end: [B, L] shifted index of each line's last token (−1 pad).
        groups: [B] group id of each program.
        action_mask: [B, T] the action tokens.
        baseline, scale_by_std, eps: As for :func:`group_normalise` (both parts).
        process_coef: Weight of the process part in ``"outcome+process"``.

    Returns:
        :class:`Advantages`.
    """
    if mode not in ADVANTAGE_MODES:
        raise ValueError(f"mode must be one of {ADVANTAGE_MODES}, got {mode!r}")
    kw = dict(baseline=baseline, scale_by_std=scale_by_std, eps=eps)
    mask = action_mask.bool()
    tokens = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    outcome = torch.zeros(mask.shape[0], dtype=torch.float32, device=mask.device)
    lines = torch.zeros(line_rewards.shape, dtype=torch.float32, device=mask.device)
    if mode != "process":
        outcome = outcome_advantages(outcome_rewards, groups, **kw)  # type: ignore[arg-type]
        tokens = tokens + torch.where(mask, outcome.unsqueeze(1).expand_as(tokens), torch.zeros_like(tokens))
    if mode != "outcome":
        lines = process_line_advantages(line_rewards, line_mask, groups, **kw)  # type: ignore[arg-type]
        weight = process_coef if mode == "outcome+process" else 1.0
        tokens = tokens + weight * tokens_from_lines(lines, line_end, mask)
    return Advantages(tokens, outcome, lines)


def kl_to_go(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_{s ≥ t} kl_s over each row's valid tokens: the return-to-go of a per-token KL penalty
    (γ = 1), which a KL placed in the reward adds (× −β) to every token's advantage.

    Args:
        kl: [B, T] per-token KL estimate. mask: [B, T] valid tokens.

    Returns:
        [B, T] (0 where ``mask`` is False).
    """
    if kl.shape != mask.shape:
        raise ValueError(f"kl {tuple(kl.shape)} and mask {tuple(mask.shape)} must share one shape")
    m = mask.bool()
    masked = torch.where(m, kl.float(), torch.zeros_like(kl, dtype=torch.float32))
    return torch.where(m, masked.flip(1).cumsum(1).flip(1), torch.zeros_like(masked))


__all__ = [
    "ADVANTAGE_MODES", "BASELINES", "AdvantageMode", "Advantages", "Baseline", "group_normalise",
    "kl_to_go", "outcome_advantages", "process_line_advantages", "token_advantages", "tokens_from_lines",
]  # fmt: skip
