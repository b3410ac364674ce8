"""Every codegym env id, registered in one place with string entry points."""

from __future__ import annotations

import gymnasium as gym

#: Default line limit; also the spec's ``max_episode_steps`` (the env executes the program
#: when it truncates, so the agent always gets its unit-test outcome).
DEFAULT_MAX_LINES = 64


def register_envs() -> None:
    """Register ``CodePRM-v0`` (idempotent)."""
    if "CodePRM-v0" not in gym.registry:
        gym.register(
            id="CodePRM-v0",
            entry_point="codegym.envs.code_prm:CodePRMEnv",
            max_episode_steps=DEFAULT_MAX_LINES,
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
