"""``random``: writes a few random (almost surely wrong) lines, then submits."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, Observation
from codegym.constants import SUBMIT

_TOKENS = (
    "x", "xs", "y", "i", "0", "1", "2", "=", "+", "-", "*", "(", ")", "[", "]", ":", ",",
    "return", "for", "in", "if", "not", "len", "sum", "range", "None", "'a'",
)


class RandomAgent(Agent):
    """Emits 1..``max_lines`` lines of random code-like tokens, then submits.

    A baseline that should pass nothing; its lines are valid actions.

    Args:
        max_lines: Most lines per episode.
        seed: Seed of the agent's own generator.
    """

    name = "random"

    def __init__(self, max_lines: int = 6, seed: int | None = None) -> None:
        max_lines = int(max_lines)
        if max_lines < 1:
            raise ValueError(f"max_lines must be >= 1, got {max_lines}")
        self.max_lines = max_lines
        self.rng = np.random.default_rng(seed)
        self._left = 0

    def reset(self, obs: Observation, info: dict[str, Any]) -> None:
        self._left = int(self.rng.integers(1, self.max_lines + 1))

    def reset_batch(self, observations, infos) -> None:  # type: ignore[override]
        super().reset_batch(observations, infos)
        for slot in self._slots:
            slot.rng = np.random.default_rng(self.rng.integers(2**63))
            slot.reset({}, {})

    def act(self, obs: Observation) -> str:
        if self._left <= 0:
            return SUBMIT
        self._left -= 1
        n = int(self.rng.integers(1, 8))
        return "    " + " ".join(str(t) for t in self.rng.choice(_TOKENS, size=n))
