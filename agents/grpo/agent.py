"""``grpo``: the agent a GRPO run produced (``codegym eval --agent grpo --model RUN_DIR``)."""

from __future__ import annotations

from agents.ppo.agent import PPOAgent


class GRPOAgent(PPOAgent):
    """Samples lines from a GRPO-trained policy: a ``codegym train --agent grpo`` run directory
    (its ``policy/``, else the latest checkpoint's), a checkpoint directory, or a loaded model
    (see :class:`agents.ppo.agent.PPOAgent`; the run layouts are the same)."""

    name = "grpo"
