"""Every codegym env id, registered in one place with string entry points."""

from __future__ import annotations

import gymnasium as gym

#: The current version of the line-by-line code environment.
ENV_ID = "CodePRM-v1"

#: Default line limit. The env truncates at ``max_lines`` itself and still executes the
#: program.
DEFAULT_MAX_LINES = 64


def register_envs() -> None:
    """Register ``CodePRM-v1``, the previous ``CodePRM-v0`` and ``CodePRMDiscrete-v1`` (idempotent).

    * ``CodePRM-v1``: closed potential-based shaping by default (``reward_mode="delta"``) with
      the PRM score read as a probability (``potential="probability"``), the embedded default
      PRM on ``pipelines`` (``prm="auto"``), the train split by default, and no
      ``max_episode_steps``: ``max_lines`` alone ends an episode (by truncation, after which
      the program still runs), so Gymnasium's ``TimeLimit`` can never cut an episode without
      executing its program, whatever ``max_lines`` is.
    * ``CodePRM-v0``: the first version, whose ``delta`` shaping was not closed at the end of
      an episode (``reward_mode="delta_open"`` in v1 terms), with no PRM by default, the
      suite's test split and ``max_episode_steps=65``; kept so old code still runs.
      Gymnasium warns that a newer version exists when it is made.
    * ``CodePRMDiscrete-v1``: ``CodePRM-v1`` behind :class:`codegym.wrappers.CandidateLineWrapper`
      (K candidate lines from a proposer, a discrete action, a numeric observation) for
      Stable-Baselines3 and other libraries that need standard spaces; its version follows
      ``CodePRM``'s.
    """
    if "CodePRM-v1" not in gym.registry:
        gym.register(
            id="CodePRM-v1",
            entry_point="codegym.envs.code_prm:CodePRMEnv",
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
    if "CodePRM-v0" not in gym.registry:
        gym.register(
            id="CodePRM-v0",
            entry_point="codegym.envs.code_prm:CodePRMEnvV0",
            max_episode_steps=DEFAULT_MAX_LINES + 1,
            kwargs={"max_lines": DEFAULT_MAX_LINES, "reward_mode": "delta_open", "potential": "score"},
        )
    if "CodePRMDiscrete-v1" not in gym.registry:
        gym.register(
            id="CodePRMDiscrete-v1",
            entry_point="codegym.wrappers:make_discrete_env",
            max_episode_steps=DEFAULT_MAX_LINES + 1,
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
