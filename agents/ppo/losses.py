"""PPO losses over tokens: log-probs/entropy from logits, clipped policy and value losses.

Pure functions; every reduction is a masked mean over the valid (generated) tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from agents.ppo.gae import masked_mean


class TokenStats(NamedTuple):
    """Per-token log-prob of the taken token and the policy entropy. Shapes [B, T]."""

    logprobs: torch.Tensor
    entropy: torch.Tensor


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, entropy: bool = True
) -> TokenStats:
    """Log-prob of ``targets`` under ``softmax(logits / temperature)``, and its entropy.

    Args:
        logits: [B, T, V] next-token logits (already aligned with ``targets``).
        targets: [B, T] token ids.
        temperature: Sampling temperature the log-probs refer to.
        entropy: Compute the entropy (else zeros).

    Returns:
        :class:`TokenStats` with [B, T] tensors.
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)  # [B, T, V]
    taken = logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)  # [B, T]
    if entropy:
        ent = -(logp.exp() * logp).sum(-1)  # [B, T]
    else:
        ent = torch.zeros_like(taken)
    return TokenStats(taken, ent)


class PolicyLoss(NamedTuple):
    """Clipped surrogate loss and its diagnostics (scalars)."""

    loss: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


def clipped_policy_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_coef: float,
) -> PolicyLoss:
    """PPO-clip surrogate: mean over tokens of max(−A·r, −A·clip(r, 1−ε, 1+ε)).

    Args:
        new_logprobs: [B, T] log π_θ(a_t | s_t).
        old_logprobs: [B, T] log π_old(a_t | s_t) from the rollout.
        advantages: [B, T] (whitened) advantages.
        mask: [B, T] valid tokens.
        clip_coef: ε.

    Returns:
        :class:`PolicyLoss`: loss, approx KL(old‖new) (``(r−1) − log r``, Schulman's k3) and
        the fraction of tokens whose ratio was clipped.
    """
    logratio = new_logprobs - old_logprobs
    ratio = logratio.exp()
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    loss = masked_mean(torch.maximum(pg1, pg2), mask)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - logratio, mask)
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip_coef).float(), mask)
    return PolicyLoss(loss, approx_kl, clipfrac)


def clipped_value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None,
) -> torch.Tensor:
    """0.5 · mean over tokens of the (clipped) squared error to the returns.

    With ``clip`` (CleanRL's ``clip_vloss``): max((V−R)², (V_old + clip(V−V_old, ±c) − R)²).
    """
    unclipped = (new_values - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(unclipped, mask)
    clipped_v = old_values + (new_values - old_values).clamp(-clip, clip)
    clipped = (clipped_v - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)


def explained_variance(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var[target − pred] / Var[target] over valid entries (nan when Var[target] = 0)."""
    m = mask.bool()
    y, p = target[m].float(), pred[m].float()
    if y.numel() < 2:
        return float("nan")
    var_y = y.var(unbiased=False)
    if float(var_y) == 0.0:
        return float("nan")
    return float(1.0 - (y - p).var(unbiased=False) / var_y)


class KLController:
    """β of the per-token KL penalty: fixed, or adaptive (Ziegler et al., 2019).

    The adaptive rule moves β proportionally to the relative error of the measured KL per
    sequence: ``β ← β · (1 + clip((KL − target) / target, −0.2, 0.2) · n / horizon)`` with
    ``n`` the number of sequences in the batch.
    """

    def __init__(self, init: float, adaptive: bool = False, target: float = 1.0, horizon: int = 10000):
        if init < 0:
            raise ValueError(f"kl_coef must be >= 0, got {init}")
        if adaptive and (target <= 0 or horizon <= 0):
            raise ValueError(f"adaptive KL needs target_kl > 0 and kl_horizon > 0, got {target}, {horizon}")
        self.value = float(init)
        self.adaptive = adaptive
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, kl_per_sequence: float, n_sequences: int) -> float:
        """Update β from the batch's mean KL per sequence; returns the new β."""
        if self.adaptive:
            error = min(max((kl_per_sequence - self.target) / self.target, -0.2), 0.2)
            self.value *= 1.0 + error * n_sequences / self.horizon
        return self.value
