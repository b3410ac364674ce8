"""The PPO critic: a separate backbone + scalar ``score`` head — the PRM's architecture.

The critic *is* a :class:`codegym.prm.ProcessRewardModel` (an ``AutoModel`` backbone and a
linear ``score`` head read at every token), wrapped in :class:`Critic` whose ``forward``
returns one value per token so that DDP sees the whole computation. Hence:

* ``value_init="prm"``: ``ProcessRewardModel.from_pretrained(PRM_DIR)`` — a plain load of the
  PRM's weights, head included; the critic's initial parameters equal the PRM's exactly, and
  its values are the PRM's scores (``to_score`` of the head output: identity for an
  ``mse`` PRM, ``2·sigmoid − 1`` for a ``bce`` one).
  The PRM reads a line's score at the line's last token, which is where the critic reads the
  value of the state after that line (see :mod:`agents.ppo.rollout`), so the PRM's line
  scores are the critic's starting values at line boundaries.
* ``value_init="policy"``: the policy's backbone (its transformer without the LM head)
  with a fresh ``score`` head initialised to zero (V ≡ 0 at the start).
* ``"checkpoint"``: a critic saved by :func:`save_critic` (resume).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Critic(nn.Module):
    """Per-token values from a PRM-architecture model (backbone + ``score`` head).

    Args:
        prm: A :class:`codegym.prm.ProcessRewardModel`.
    """

    def __init__(self, prm: Any) -> None:
        super().__init__()
        self.prm = prm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values [B, S] at every position of ``input_ids`` [B, S] (on the PRM's score scale)."""
        raw, _ = self.prm(input_ids=input_ids, attention_mask=attention_mask)
        return self.prm.to_score(raw)


def critic_values(critic: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``critic(input_ids, attention_mask)`` -> values [B, S] (works through DDP wrappers)."""
    return critic(input_ids=input_ids, attention_mask=attention_mask).float()


def build_critic(
    value_init: str,
    prm_dir: str | os.PathLike[str] | None,
    policy_dir: str | os.PathLike[str] | None,
    seed: int = 0,
) -> Critic:
    """Build the critic.

    Args:
        value_init: ``"prm"`` (load ``prm_dir``), ``"policy"`` (policy backbone + zero head
            from ``policy_dir``) or ``"checkpoint"`` (a critic dir saved by :func:`save_critic`,
            passed as ``prm_dir``).
        prm_dir: PRM checkpoint dir (or the critic dir for ``"checkpoint"``).
        policy_dir: Policy checkpoint dir (for ``"policy"``).
        seed: Seed of the head's init before it is zeroed (kept for reproducible builds).

    Raises:
        ValueError: Unknown ``value_init`` or a missing directory.
    """
    from codegym.prm import ProcessRewardModel

    if value_init in ("prm", "checkpoint"):
        if prm_dir is None:
            raise ValueError(f"value_init={value_init!r} needs a PRM/critic directory (--prm DIR)")
        if not (Path(prm_dir) / "config.json").is_file():
            raise ValueError(f"{value_init} directory {str(prm_dir)!r} has no config.json")
        return Critic(ProcessRewardModel.from_pretrained(str(prm_dir)))
    if value_init == "policy":
        if policy_dir is None:
            raise ValueError("value_init='policy' needs the policy directory")
        prm = ProcessRewardModel.from_base(str(policy_dir), objective="mse", seed=seed)
        with torch.no_grad():
            prm.score.weight.zero_()
            if prm.score.bias is not None:
                prm.score.bias.zero_()
        return Critic(prm)
    raise ValueError(f"value_init must be 'prm' or 'policy', got {value_init!r}")


def save_critic(critic: Critic, path: str | os.PathLike[str], tokenizer: Any = None) -> None:
    """``save_pretrained`` the critic's PRM (and tokenizer): loadable as a PRM too."""
    critic.prm.save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
