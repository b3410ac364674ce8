"""Environments: :class:`CodePRMEnv` (``gym.make("CodePRM-v0")``) and its native vector form
:class:`CodePRMVectorEnv` (``gym.make_vec("CodePRM-v0", N)``), registered by ``import codegym``.
Both run the episode logic of :mod:`codegym.envs.episode`."""

from codegym.envs.code_prm import CodePRMEnv, is_neutral_line
from codegym.envs.scoring import BatchedLineScorer, LineScorer, PerSlotScorers
from codegym.envs.vector import CodePRMVectorEnv

__all__ = ["BatchedLineScorer", "CodePRMEnv", "CodePRMVectorEnv", "LineScorer", "PerSlotScorers", "is_neutral_line"]
