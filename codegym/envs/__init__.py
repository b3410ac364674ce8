"""Environments. ``CodePRM-v0`` is registered by ``import codegym``."""

from codegym.envs.code_prm import CodePRMEnv, is_neutral_line
from codegym.envs.scoring import LineScorer

__all__ = ["CodePRMEnv", "LineScorer", "is_neutral_line"]
