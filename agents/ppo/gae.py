"""Generalised Advantage Estimation over tokens, advantage whitening, reward placement, and
the bounds that closed shaping puts on the values.

Pure functions of tensors (no module state, no RNG), unit-tested against hand-computed
values in ``tests/agents/ppo/test_ppo_gae.py``; why the values are bounded under closed
shaping is shown in miniature in ``tests/agents/ppo/test_shaping_collapse.py``.

Layout: one row per episode (one sampled program), one column per generated token. ``mask``
marks the row's real tokens; padding may sit anywhere (left, right, or between segments) and
is skipped: the "next" state of a token is the next *valid* token of the same row. After the
row's last valid token the episode ends: the value there is ``last_values`` (0 for a
terminated episode, V(s_T) to bootstrap a truncated one).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class GAEOutput(NamedTuple):
    """Advantages and returns (``advantages + values``); both 0 at padding. Shapes [B, T]."""

    advantages: torch.Tensor
    returns: torch.Tensor


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    last_values: torch.Tensor | None = None,
) -> GAEOutput:
    """GAE(γ, λ) per token.

    δ_t = r_t + γ V(s_{t+1}) − V(s_t);  A_t = δ_t + γλ A_{t+1};  R_t = A_t + V(s_t),
    with V(s_{T}) = ``last_values`` after a row's last valid token.

    Args:
        rewards: [B, T] reward received after each token.
        values: [B, T] critic value of the state in which each token was chosen.
        mask: [B, T] bool (or 0/1): which entries are real tokens.
        gamma: Discount per token, in [0, 1].
        lam: GAE λ, in [0, 1].
        last_values: [B] value after the last valid token (bootstrap); zeros when None.

    Returns:
        :class:`GAEOutput` with [B, T] advantages and returns (0 where ``mask`` is False).
    """
    if rewards.shape != values.shape or rewards.shape != mask.shape or rewards.dim() != 2:
        raise ValueError(
            "rewards, values and mask must share one [B, T] shape, got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}"
        )
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must be in [0, 1], got gamma={gamma}, lam={lam}")
    batch, length = rewards.shape
    mask = mask.bool()
    rewards = rewards.float()
    values = values.float()
    if last_values is None:
        next_value = torch.zeros(batch, dtype=values.dtype, device=values.device)  # [B]
    else:
        if last_values.shape != (batch,):
            raise ValueError(f"last_values must have shape [{batch}], got {tuple(last_values.shape)}")
        next_value = last_values.to(values.dtype)
    next_adv = torch.zeros_like(next_value)  # [B]
    advantages = torch.zeros_like(values)  # [B, T]
    for t in range(length - 1, -1, -1):
        valid = mask[:, t]  # [B]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = torch.where(valid, adv, torch.zeros_like(adv))
        next_adv = torch.where(valid, adv, next_adv)
        next_value = torch.where(valid, values[:, t], next_value)
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return GAEOutput(advantages=advantages, returns=returns)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (0 when the mask is empty)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the valid entries; padding stays 0.

    Uses the population variance over valid entries; a single valid entry whitens to 0.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def place_rewards(
    mask: torch.Tensor,
    line_end: torch.Tensor,
    line_rewards: torch.Tensor,
    final_reward: torch.Tensor,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """Per-token rewards of a batch of episodes.

    Line rewards go on each line's last token, the unit-test reward on the episode's final
    valid token, and every token pays the per-token KL penalty ``-kl_coef * kl``.

    Args:
        mask: [B, T] valid tokens of each row.
        line_end: [B, L] long, the token index of each line's last token (−1 = no line).
        line_rewards: [B, L] dense reward of each line (ignored where ``line_end`` is −1).
        final_reward: [B] unit-test reward, placed on the row's last valid token.
        kl: [B, T] per-token KL estimate (log π − log π_ref), or None.
        kl_coef: β of the KL penalty.

    Returns:
        [B, T] float rewards (0 at padding).
    """
    mask = mask.bool()
    batch, length = mask.shape
    if line_end.shape != line_rewards.shape or line_end.shape[0] != batch:
        raise ValueError(
            f"line_end {tuple(line_end.shape)} and line_rewards {tuple(line_rewards.shape)} "
            f"must share a [B={batch}, L] shape"
        )
    if final_reward.shape != (batch,):
        raise ValueError(f"final_reward must have shape [{batch}], got {tuple(final_reward.shape)}")
    rewards = torch.zeros(batch, length, dtype=torch.float32, device=mask.device)
    has_line = line_end >= 0
    if bool((line_end >= length).any()):
        raise ValueError(f"line_end indices must be < T={length}")
    rewards.scatter_add_(
        1,
        line_end.clamp(min=0).long(),
        torch.where(has_line, line_rewards.float(), torch.zeros_like(line_rewards.float())),
    )
    positions = torch.arange(length, device=mask.device).expand(batch, length)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values  # [B]
    if bool((last < 0).any()):
        raise ValueError("every row needs at least one valid token")
    rewards[torch.arange(batch, device=mask.device), last] += final_reward.float()
    if kl is not None:
        rewards = rewards - kl_coef * kl.float()
    return torch.where(mask, rewards, torch.zeros_like(rewards))


def bound_values(
    values: torch.Tensor, potential: torch.Tensor, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """Values clamped to the range the shaped return can take: ``[low − Φ, high − Φ]``.

    Under closed potential-based shaping the return-to-go from a state whose written prefix
    has potential Φ is ``test − Φ − (KL penalty to come)``: the dense terms telescope, the
    closing term cancels the last potential. With a unit-test reward in ``[low, high]`` the
    value lies in ``[low − Φ, high − Φ]`` whatever the potential's accuracy (minus the KL
    penalty, a few hundredths). A critic that cannot see what Φ measures (it cannot tell a
    correct prefix from a wrong one) predicts a mixture and leaves this range: below
    ``−Φ = 0`` on wrong prefixes, where nothing is left to lose. Bootstrapped advantages then
    reward ending a wrong program (EOS after a wrong prefix gets ``0 − V > 0`` every time),
    and that systematic push on the EOS token is what turned policies into empty programs.
    Clamping removes it; where the critic is inside the range nothing changes.

    Args:
        values: [B, T] critic values.
        potential: [B, T] Φ of each token's state (0 where there is no shaping), in reward
            units (× ``dense_coef``).
        low: Least unit-test reward.
        high: Largest unit-test reward.

    Returns:
        [B, T] clamped values.
    """
    if values.shape != potential.shape:
        raise ValueError(f"values {tuple(values.shape)} and potential {tuple(potential.shape)} must match")
    if low > high:
        raise ValueError(f"need low <= high, got low={low}, high={high}")
    potential = potential.to(values.dtype)
    return torch.maximum(torch.minimum(values, high - potential), low - potential)


def token_potentials(
    mask: torch.Tensor, line_end: torch.Tensor, line_rewards: torch.Tensor, final_dense: torch.Tensor
) -> torch.Tensor:
    """Φ (in reward units) of the state in which each token is chosen, under closed shaping.

    The closing term is ``−Φ(last)`` and line ``m`` earned ``Φ_m − Φ_{m−1}``, so the potential
    before line ``m`` is ``Φ(last) − Σ_{j >= m} r_j``: a token of line ``m`` (its last token
    included: the line's reward arrives after it) sees ``Φ_{m−1}``, a token after the last line
    (the EOS) sees ``Φ(last)``.

    Args:
        mask: [B, T] valid tokens.
        line_end: [B, L] token index of each line's last token (−1 = no line).
        line_rewards: [B, L] dense reward of each line (× ``dense_coef``).
        final_dense: [B] the closing term (``−Φ(last)`` × ``dense_coef``).

    Returns:
        [B, T] potentials (0 at padding).
    """
    batch, length = mask.shape
    if line_end.shape != line_rewards.shape or line_end.shape[0] != batch or final_dense.shape != (batch,):
        raise ValueError(
            f"line_end {tuple(line_end.shape)}, line_rewards {tuple(line_rewards.shape)} and final_dense "
            f"{tuple(final_dense.shape)} must share B={batch}"
        )
    has = line_end >= 0  # [B, L]
    later = torch.zeros(batch, length + 1, dtype=torch.float32, device=mask.device)  # Σ r_j over lines ending at t
    later.scatter_add_(1, torch.where(has, line_end, torch.full_like(line_end, length)).long(),
                       torch.where(has, line_rewards.float(), torch.zeros_like(line_rewards.float())))  # fmt: skip
    still_to_come = later[:, :length].flip(1).cumsum(1).flip(1)  # [B, T]: lines ending at >= t
    phi = -final_dense.float().unsqueeze(1) - still_to_come
    return torch.where(mask.bool(), phi, torch.zeros_like(phi))
