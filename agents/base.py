"""The agent protocol: ``reset(obs, info)``, ``act(obs) -> line`` and a batched variant."""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import Any

Observation = dict[str, str]


class Agent(abc.ABC):
    """An agent writes a program one line per step in ``CodePRM-v0``.

    Subclasses implement :meth:`act` (and usually :meth:`reset`). An episode looks like::

        obs, info = env.reset()
        agent.reset(obs, info)
        while True:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs))
            if terminated or truncated:
                break

    ``act`` returns one line of code (no newline) or :data:`codegym.SUBMIT`.

    The batched variant (:meth:`reset_batch` / :meth:`act_batch`) drives several episodes at
    once, one *slot* per env. The default keeps an independent copy of the agent per slot;
    model-based agents override it to batch their forward passes.
    """

    #: Registered name (``codegym eval --agent NAME``).
    name: str = "agent"

    def reset(self, obs: Observation, info: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Start an episode. ``info["task"]`` holds the :class:`codegym.tasks.Task`."""

    @abc.abstractmethod
    def act(self, obs: Observation) -> str:
        """The next line of code, or :data:`codegym.SUBMIT` to end the episode."""

    def reset_batch(self, observations: Sequence[Observation], infos: Sequence[dict[str, Any]]) -> None:
        """Start one episode per slot (``len(observations)`` slots)."""
        if len(observations) != len(infos):
            raise ValueError(
                f"reset_batch got {len(observations)} observations but {len(infos)} infos"
            )
        self._slots = [copy.copy(self) for _ in observations]
        for slot, obs, info in zip(self._slots, observations, infos):
            slot.reset(obs, info)

    def act_batch(self, observations: Sequence[Observation | None]) -> list[str | None]:
        """One action per slot; slots whose observation is ``None`` are finished (``None``)."""
        slots = getattr(self, "_slots", None)
        if slots is None or len(slots) != len(observations):
            raise ValueError("act_batch needs reset_batch with the same number of slots first")
        return [None if obs is None else slot.act(obs) for slot, obs in zip(slots, observations)]
