"""GRPO's loss pieces that PPO does not have: the KL estimator of the loss and how token losses
are aggregated. The clipped surrogate itself is PPO's (:func:`agents.ppo.losses.clipped_policy_loss`).

Pure functions of tensors, tested in ``tests/agents/grpo/test_grpo_losses.py``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

Aggregation = Literal["token", "sequence", "constant"]


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) used in GRPO's loss (Schulman's k3, DeepSeekMath
    eq. 4): ``π_ref/π − log(π_ref/π) − 1`` on the sampled token; ≥ 0, unbiased, and its
    gradient pulls π towards π_ref.

    Args:
        logprobs: [B, T] log π(token) (with gradient).
        ref_logprobs: [B, T] log π_ref(token).

    Returns:
        [B, T] per-token estimate.
    """
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1.0


class LossWeights(NamedTuple):
    """Per-token weights of a masked mean and a factor on the mean (see :func:`loss_weights`)."""

    weights: torch.Tensor  # (B, T) float, 0 outside the mask
    scale: torch.Tensor  # () float, multiplies the weighted mean


def loss_weights(mask: torch.Tensor, aggregation: Aggregation, max_tokens: int) -> LossWeights:
    """How :func:`agents.ppo.gae.masked_mean` of token losses becomes the minibatch's loss.

    ``masked_mean(x, w) = Σ x·w / Σ w``, so with

    * ``"token"``: ``w = mask`` — the mean over every token of the minibatch (PPO's loss);
    * ``"sequence"``: ``w = mask / |o_i|`` — each program's mean, then the mean over programs
      (GRPO's ``1/G Σ_i 1/|o_i| Σ_t``);
    * ``"constant"``: ``w = mask`` and ``scale = Σ mask / (B · max_tokens)`` — the sum over
      tokens divided by a constant (Dr. GRPO), the same for every batch.

    Args:
        mask: [B, T] the tokens the loss covers.
        aggregation: ``"token"``, ``"sequence"`` or ``"constant"``.
        max_tokens: The constant's tokens per program (``max_new_tokens``).

    Returns:
        :class:`LossWeights`.
    """
    m = mask.float()
    one = torch.ones((), device=m.device)
    if aggregation == "token":
        return LossWeights(m, one)
    if aggregation == "sequence":
        return LossWeights(m / m.sum(dim=1, keepdim=True).clamp(min=1.0), one)
    if aggregation == "constant":
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        return LossWeights(m, m.sum() / (m.shape[0] * max_tokens))
    raise ValueError(f"aggregation must be 'token', 'sequence' or 'constant', got {aggregation!r}")


__all__ = ["Aggregation", "LossWeights", "k3_kl", "loss_weights"]
