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

With ``lora`` (PPO's ``lora_rank``) the critic trains a LoRA adapter on its frozen backbone
and its head; it is saved as a version-3 PRM (adapter + head, naming the backbone's
directory). A LoRA critic started from the PRM is that PRM with an adapter: switched off,
with the PRM's head, it is the env's PRM (``ProcessRewardModel.adapters_off``), so PPO keeps
one PRM backbone in memory for both.

``critic="shared"`` needs no critic model: a :class:`ValueHead` reads the policy's own final
hidden states (:func:`build_value_head` says what ``value_init="prm"`` means then), and is
saved next to the policy as a version-3 PRM whose backbone is ``../policy``
(:func:`save_value_head`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codegym.lm import check_model_dir

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
    *,
    lora: Mapping[str, Any] | None = None,
    dtype: str = "fp32",
) -> Critic:
    """Build the critic.

    Args:
        value_init: ``"prm"`` (load ``prm_dir``), ``"policy"`` (policy backbone + zero head
            from ``policy_dir``) or ``"checkpoint"`` (a critic dir saved by :func:`save_critic`,
            passed as ``prm_dir``).
        prm_dir: PRM checkpoint dir (or the critic dir for ``"checkpoint"``).
        policy_dir: Policy checkpoint dir (for ``"policy"``).
        seed: Seed of the head's init before it is zeroed (kept for reproducible builds).
        lora: Keyword arguments of :func:`codegym.adapters.add_lora` (``rank``, ...): train a
            LoRA adapter on a frozen backbone (stored in ``dtype``) and the head; None: the
            whole critic trains. A ``"checkpoint"`` critic saved with an adapter keeps it.
        dtype: Precision the backbone is loaded in (trained weights are made fp32 later by
            :class:`codegym.precision.MixedPrecision`).

    Raises:
        ValueError: Unknown ``value_init`` or a missing directory.
    """
    from codegym.prm import ProcessRewardModel

    if value_init in ("prm", "checkpoint"):
        if prm_dir is None:
            raise ValueError(f"value_init={value_init!r} needs a PRM/critic directory (--prm DIR)")
        check_model_dir(prm_dir, "PRM" if value_init == "prm" else "critic")
        resume_lora = value_init == "checkpoint" and lora is not None
        prm = ProcessRewardModel.from_pretrained(str(prm_dir), dtype=dtype, adapter="train" if resume_lora else "merge")
        if value_init == "prm":
            return Critic(_with_lora(prm, lora), value_scale=0.5, value_shift=0.5)
        saved = Path(prm_dir) / CRITIC_CONFIG
        meta = json.loads(saved.read_text()) if saved.is_file() else {}
        return Critic(prm, meta.get("value_scale", 1.0), meta.get("value_shift", 0.0))
    if value_init == "policy":
        if policy_dir is None:
            raise ValueError("value_init='policy' needs the policy directory")
        prm = ProcessRewardModel.from_base(str(policy_dir), objective="mse", seed=seed, dtype=dtype)
        with torch.no_grad():
            prm.score.weight.zero_()
            if prm.score.bias is not None:
                prm.score.bias.zero_()
        return Critic(_with_lora(prm, lora))
    raise ValueError(f"value_init must be 'prm' or 'policy', got {value_init!r}")


def _with_lora(prm: Any, lora: Mapping[str, Any] | None) -> Any:
    """``prm`` with a LoRA adapter on its backbone (the head stays trainable), or as it is."""
    if lora is not None:
        from codegym.adapters import add_lora

        add_lora(prm.backbone, **lora)
    return prm


def save_critic(critic: Critic, path: str | os.PathLike[str], tokenizer: Any = None) -> None:
    """``save_pretrained`` the critic's PRM (and tokenizer): loadable as a PRM too (a LoRA
    critic as a version-3 PRM: its adapter and head, naming the backbone it was trained on)."""
    critic.prm.save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    meta = {"value_scale": critic.value_scale, "value_shift": critic.value_shift}
    (Path(path) / CRITIC_CONFIG).write_text(json.dumps(meta) + "\n")


# ------------------------------------------------------------------ shared-backbone critic
def build_value_head(value_init: str, prm_dir: str | os.PathLike[str] | None, hidden: int) -> ValueHead:
    """The value head of a critic that shares the policy's backbone (``critic="shared"``).

    ``value_init="policy"``: a zero head (V ≡ 0 at the start). ``value_init="prm"``: the PRM's
    ``score`` head (weights, objective) with the PRM-critic's output map ``(s + 1) / 2``, read
    on the **policy's** hidden states. A PRM's head is calibrated on its own backbone's
    features: it gives the PRM's scores exactly when the PRM kept the policy's backbone (a
    head-only PRM, or a PRM whose backbone is the policy's); after the PRM fine-tuned its
    backbone it is a warm start in a nearby feature space, which the critic warm-up iterations
    fit to the returns. The PRM's own scores stay the dense reward (the env's PRM, frozen).

    Raises:
        ValueError: The PRM's head reads another hidden size than the policy's.
    """
    if value_init == "policy":
        return ValueHead(hidden)
    if value_init != "prm":
        raise ValueError(f"value_init must be 'prm' or 'policy', got {value_init!r}")
    if prm_dir is None:
        raise ValueError("value_init='prm' needs a PRM directory (--prm DIR)")
    from codegym.prm.model import read_prm_head

    weight, bias, objective = read_prm_head(prm_dir)
    if weight.numel() != hidden:
        raise ValueError(
            f"the PRM {str(prm_dir)!r} has a head for hidden size {weight.numel()}, the policy's hidden size is "
            f"{hidden}: value_init='prm' with critic='shared' needs a PRM on the policy's architecture; use "
            "value_init='policy' or critic='separate'"
        )
    head = ValueHead(hidden, objective=objective, value_scale=0.5, value_shift=0.5)
    with torch.no_grad():
        head.score.weight.copy_(weight.reshape(1, -1))
        head.score.bias.copy_(bias.reshape(1))
    return head


def save_value_head(head: ValueHead, path: str | os.PathLike[str], tokenizer: Any, backbone: str = "../policy") -> None:
    """Write a shared-backbone critic: a version-3 PRM directory (the head, the tokenizer,
    ``backbone`` = the policy directory relative to ``path``), so it loads as a PRM anywhere
    (``ProcessRewardModel.from_pretrained``) next to its policy, plus ``critic.json``."""
    from codegym.prm.model import save_prm_head

    save_prm_head(path, head.score.weight, head.score.bias, head.objective, tokenizer, backbone)
    meta = {"value_scale": head.value_scale, "value_shift": head.value_shift, "shared": True}
    (Path(path) / CRITIC_CONFIG).write_text(json.dumps(meta) + "\n")


def load_value_head(path: str | os.PathLike[str]) -> ValueHead:
    """The value head saved by :func:`save_value_head` (resume)."""
    from codegym.prm.model import read_prm_head

    weight, bias, objective = read_prm_head(path)
    meta = json.loads((Path(path) / CRITIC_CONFIG).read_text())
    head = ValueHead(weight.numel(), objective=objective, value_scale=meta["value_scale"], value_shift=meta["value_shift"])
    with torch.no_grad():
        head.score.weight.copy_(weight.reshape(1, -1))
        head.score.bias.copy_(bias.reshape(1))
    return head
