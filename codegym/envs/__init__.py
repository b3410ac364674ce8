"""Environments. ``CodePRM-v1`` (and its previous version ``CodePRM-v0``) are registered by
``import codegym``."""

from codegym.envs.code_prm import CodePRMEnv, is_neutral_line
from codegym.envs.scoring import LineScorer

__all__ = ["CodePRMEnv", "LineScorer", "is_neutral_line"]
