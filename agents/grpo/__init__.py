"""Critic-free RL for codegym: group-relative policy optimisation (GRPO) with outcome and
process advantages, and its Dr. GRPO and RLOO variants.

``GRPOConfig`` (every knob, each citing its method), ``GRPOTrainer`` (rollout -> rewards ->
group-relative advantages -> minibatch epochs of the clipped surrogate with a KL to the
reference -> logging, resumable; no critic) and the pure advantage functions
(:mod:`agents.grpo.advantages`). Submodules with models are imported lazily so
``import agents.grpo`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.grpo.advantages import (
    group_normalise,
    outcome_advantages,
    process_line_advantages,
    token_advantages,
    tokens_from_lines,
)
from agents.grpo.config import GRPOConfig

if TYPE_CHECKING:
    from agents.grpo.agent import GRPOAgent
    from agents.grpo.trainer import GRPOTrainer

__all__ = [
    "GRPOAgent",
    "GRPOConfig",
    "GRPOTrainer",
    "group_normalise",
    "outcome_advantages",
    "process_line_advantages",
    "token_advantages",
    "tokens_from_lines",
]


def __getattr__(name: str) -> Any:
    if name == "GRPOTrainer":
        from agents.grpo.trainer import GRPOTrainer

        return GRPOTrainer
    if name == "GRPOAgent":
        from agents.grpo.agent import GRPOAgent

        return GRPOAgent
    raise AttributeError(f"module 'agents.grpo' has no attribute {name!r}")
