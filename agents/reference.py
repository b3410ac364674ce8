"""``reference``: replays the task's reference solution, optionally corrupting lines."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, Observation
from codegym.constants import SUBMIT
from codegym.envs.code_prm import is_neutral_line


def corrupt_line(line: str, rng: np.random.Generator, others: list[str]) -> str:
    """A changed version of ``line`` (same indentation) that is not equal to it.

    Tries, in random order: change a number, swap in another line of the solution, flip an
    operator; falls back to ``pass``.
    """
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    candidates: list[str] = []
    digits = [i for i, c in enumerate(body) if c.isdigit()]
    if digits:
        i = int(rng.choice(digits))
        candidates.append(body[:i] + str((int(body[i]) + 1 + int(rng.integers(0, 8))) % 10) + body[i + 1 :])
    for a, b in ((" + ", " - "), (" > ", " < "), (" * ", " + "), ("sum(", "len("), ("[::-1]", "")):
        if a in body:
            candidates.append(body.replace(a, b, 1))
    other = [o.strip() for o in others if o.strip() and o.strip() != body and not is_neutral_line(o)]
    if other:
        candidates.append(str(rng.choice(other)))
    candidates = [c for c in candidates if c != body]
    choice = str(rng.choice(candidates)) if candidates else "pass"
    return indent + choice


class ReferenceAgent(Agent):
    """Replays ``task.solution`` line by line, then submits.

    Args:
        corrupt: Probability of corrupting each code line (see :func:`corrupt_line`); with
            ``corrupt > 0`` at least the result is usually a failing program.
        seed: Seed of the agent's own generator (corruption choices).
    """

    name = "reference"

    def __init__(self, corrupt: float = 0.0, seed: int | None = None) -> None:
        corrupt = float(corrupt)
        if not 0.0 <= corrupt <= 1.0:
            raise ValueError(f"corrupt must be a probability in [0, 1], got {corrupt}")
        self.corrupt = corrupt
        self.rng = np.random.default_rng(seed)
        self._lines: list[str] = []
        self._pos = 0

    def reset(self, obs: Observation, info: dict[str, Any]) -> None:
        task = info.get("task")
        if task is None:
            raise ValueError("ReferenceAgent needs info['task'] at reset (CodePRM-v0 provides it)")
        lines = list(task.solution_lines)
        if self.corrupt > 0:
            lines = [
                corrupt_line(line, self.rng, lines)
                if not is_neutral_line(line) and self.rng.random() < self.corrupt
                else line
                for line in lines
            ]
        self._lines = lines
        self._pos = 0

    def reset_batch(self, observations, infos) -> None:  # type: ignore[override]
        super().reset_batch(observations, infos)
        # Independent generators per slot, derived from the agent's own.
        for slot in self._slots:
            slot.rng = np.random.default_rng(self.rng.integers(2**63))

    def act(self, obs: Observation) -> str:
        if self._pos >= len(self._lines):
            return SUBMIT
        line = self._lines[self._pos]
        self._pos += 1
        return line
