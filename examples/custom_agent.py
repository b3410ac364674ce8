"""A custom agent plugged into `codegym eval` by `module:Class`.

Run: .venv/bin/codegym eval --suite pipelines --episodes 20 --agent examples.custom_agent:ReturnLength
(from the repository root, so `examples` is importable).
"""

from agents import Agent
from codegym import SUBMIT


class ReturnLength(Agent):
    """Ignores every step and returns len(xs): right only when the last step asks for it."""

    def reset(self, obs, info):
        self.written = False

    def act(self, obs):
        if self.written:
            return SUBMIT
        self.written = True
        return "    return len(xs)"
