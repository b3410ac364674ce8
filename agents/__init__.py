"""Agents for codegym envs.

``codegym`` loads agents by registered name or ``"module:Class"`` string. The built-in names
(``reference``, ``random``, ``hf``, ``ppo``) are declared as ``codegym.agents`` entry points in
``pyproject.toml``: the same plugin mechanism a third-party package uses.
"""

from agents.base import Agent, Observation

__all__ = ["Agent", "Observation"]
