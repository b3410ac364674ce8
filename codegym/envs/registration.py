"""Every codegym env id, registered in one place with string entry points."""

from __future__ import annotations

import gymnasium as gym

#: The line-by-line code environment, as users make it: ``gym.make("CodePRM-v0")``.
ENV_ID = "CodePRM-v0"

#: Default line limit. The env truncates at ``max_lines`` itself and still executes the
#: program.
DEFAULT_MAX_LINES = 64


def register_envs() -> None:
    """Register ``CodePRM-v0`` and ``CodePRMDiscrete-v0`` (idempotent).

    * ``CodePRM-v0`` (:class:`codegym.envs.CodePRMEnv`): closed potential-based shaping by
      default (``reward_mode="delta"``) with the PRM score read as a probability
      (``potential="probability"``), the embedded default PRM on ``pipelines``
      (``prm="auto"``), the train split by default, and no ``max_episode_steps``:
      ``max_lines`` alone ends an episode (by truncation, after which the program still
      runs), so Gymnasium's ``TimeLimit`` can never cut an episode without executing its
      program, whatever ``max_lines`` is. Its ``vector_entry_point`` is the native
      :class:`codegym.envs.CodePRMVectorEnv` (one batched PRM forward per step, programs run
      in parallel), which ``gym.make_vec("CodePRM-v0", N)`` returns by default and
      ``vectorization_mode="vector_entry_point"`` asks for by name; ``"sync"`` and ``"async"``
      wrap N single envs as usual.
    * ``CodePRMDiscrete-v0``: ``CodePRM-v0`` behind
      :class:`codegym.wrappers.CandidateLineWrapper` (K candidate lines from a proposer, a
      discrete action, a numeric observation) for Stable-Baselines3 and other libraries
      that need standard spaces; its version follows ``CodePRM``'s.

    Only one version of each is registered: Gymnasium calls every lower version of a
    registered id out of date, so keeping a second id would flag the one users call.
    """
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="codegym.envs.code_prm:CodePRMEnv",
            vector_entry_point="codegym.envs.vector:CodePRMVectorEnv",
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
    if "CodePRMDiscrete-v0" not in gym.registry:
        gym.register(
            id="CodePRMDiscrete-v0",
            entry_point="codegym.wrappers:make_discrete_env",
            max_episode_steps=DEFAULT_MAX_LINES + 1,
            kwargs={"max_lines": DEFAULT_MAX_LINES},
        )
