"""Every codegym env id, registered in one place with string entry points."""

from __future__ import annotations

import gymnasium as gym

#: Default line limit. The env truncates at ``max_lines`` itself and still executes the
#: program; the spec's ``max_episode_steps`` is one more, so that Gymnasium's ``TimeLimit``
#: (which would cut without executing) is only a safety net.
DEFAULT_MAX_LINES = 64


def register_envs() -> None:
    """Register ``CodePRM-v0`` (idempotent)."""
    if "CodePRM-v0" not in gym.registry:
        gym.register(
            id="CodePRM-v0",
            entry_point="codegym.envs.code_prm:CodePRMEnv",
            max_episode_steps=DEFAULT_MAX_LINES + 1,
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
