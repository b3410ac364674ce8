"""The PPO critic: a separate backbone + scalar ``score`` head — the PRM's architecture.

The critic *is* a :class:`codegym.prm.ProcessRewardModel` (an ``AutoModel`` backbone and a
linear ``score`` head read at every token), wrapped in :class:`Critic` whose ``forward``
returns one value per token so that DDP sees the whole computation. Hence:

* ``value_init="prm"``: ``ProcessRewardModel.from_pretrained(PRM_DIR)`` — a plain load of the
  PRM's weights, head included; the critic's initial parameters equal the PRM's exactly.
  Its values are the PRM's scores read as probabilities, ``(s + 1) / 2`` with ``s`` the
  score on the label scale [−1, 1] (``to_score`` of the head output: identity for an ``mse``
  PRM, ``2·sigmoid − 1`` for a ``bce`` one): the PRM estimates whether a prefix is correct,
  and the return it starts as an estimate of is the unit-test reward in [0, 1]. The map is a
  fixed output transform (``Critic.value_scale`` / ``value_shift``, saved with the critic),
  not a change of weights.
  The PRM reads a line's score at the line's last token, which is where the critic reads the
  value of the state after that line (see :mod:`agents.ppo.batch`), so the PRM's line
  scores are the critic's starting values at line boundaries.
* ``value_init="policy"``: the policy's backbone (its transformer without the LM head)
  with a fresh ``score`` head initialised to zero (V ≡ 0 at the start).
* ``"checkpoint"``: a critic saved by :func:`save_critic` (resume).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

CRITIC_CONFIG = "critic.json"


class Critic(nn.Module):
    """Per-token values from a PRM-architecture model (backbone + ``score`` head).

    Args:
        prm: A :class:`codegym.prm.ProcessRewardModel`.
        value_scale: Values are ``value_scale * score + value_shift``.
        value_shift: See ``value_scale``.
    """

    def __init__(self, prm: Any, value_scale: float = 1.0, value_shift: float = 0.0) -> None:
        super().__init__()
        self.prm = prm
        self.value_scale = float(value_scale)
        self.value_shift = float(value_shift)

    def values_from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """Values from the head's raw outputs (any shape)."""
        return self.value_scale * self.prm.to_score(raw) + self.value_shift

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values [B, S] at every position of ``input_ids`` [B, S]."""
        raw, _ = self.prm(input_ids=input_ids, attention_mask=attention_mask)
        return self.values_from_raw(raw)


class ValueHead(nn.Module):
    """The value head of a critic that shares the policy's backbone (``critic="shared"``): a
    linear ``score`` read on the policy's final hidden states, with a PRM's output transform.

    Values are ``value_scale * to_score(score(h)) + value_shift`` with ``to_score`` the
    identity (``objective="mse"``) or ``2·sigmoid − 1`` (``"bce"``), as for :class:`Critic`.

    Args:
        hidden: Hidden size of the policy.
        objective: ``"mse"`` or ``"bce"`` (from a PRM head, see :func:`build_value_head`).
        value_scale: See above.
        value_shift: See above.
    """

    def __init__(self, hidden: int, objective: str = "mse", value_scale: float = 1.0, value_shift: float = 0.0) -> None:
        super().__init__()
        if objective not in ("mse", "bce"):
            raise ValueError(f"objective must be 'mse' or 'bce', got {objective!r}")
        self.score = nn.Linear(hidden, 1)
        self.objective = objective
        self.value_scale = float(value_scale)
        self.value_shift = float(value_shift)
        with torch.no_grad():
            self.score.weight.zero_()
            self.score.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Values (fp32) of hidden states ``[..., H]`` -> ``[...]``."""
        raw = self.score(hidden.to(self.score.weight.dtype)).squeeze(-1).float()
        score = 2.0 * torch.sigmoid(raw) - 1.0 if self.objective == "bce" else raw
        return self.value_scale * score + self.value_shift


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
        prm = ProcessRewardModel.from_pretrained(str(prm_dir))
        if value_init == "prm":
            return Critic(prm, value_scale=0.5, value_shift=0.5)
        saved = Path(prm_dir) / CRITIC_CONFIG
        meta = json.loads(saved.read_text()) if saved.is_file() else {}
        return Critic(prm, meta.get("value_scale", 1.0), meta.get("value_shift", 0.0))
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
    meta = {"value_scale": critic.value_scale, "value_shift": critic.value_shift}
    (Path(path) / CRITIC_CONFIG).write_text(json.dumps(meta) + "\n")
