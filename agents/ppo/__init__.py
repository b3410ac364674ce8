"""LLM-PPO with line-level rewards and a PRM-initialised critic.

``PPOConfig`` (every knob, CPU-calibrated defaults), ``PPOTrainer`` (rollout -> advantages ->
minibatch epochs -> logging, resumable), the pure GAE function and the critic. Submodules are
imported lazily so ``import agents.ppo`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.ppo.config import PPOConfig
from agents.ppo.gae import GAEOutput, compute_gae, masked_whiten, place_rewards

if TYPE_CHECKING:
    from agents.ppo.agent import PPOAgent
    from agents.ppo.trainer import PPOTrainer

__all__ = [
    "GAEOutput",
    "PPOAgent",
    "PPOConfig",
    "PPOTrainer",
    "compute_gae",
    "masked_whiten",
    "place_rewards",
]


def __getattr__(name: str) -> Any:
    if name == "PPOTrainer":
        from agents.ppo.trainer import PPOTrainer

        return PPOTrainer
    if name == "PPOAgent":
        from agents.ppo.agent import PPOAgent

        return PPOAgent
    raise AttributeError(f"module 'agents.ppo' has no attribute {name!r}")
