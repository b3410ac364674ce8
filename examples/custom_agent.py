"""A custom agent: subclass ``agents.Agent`` (no constructor needed) and evaluate it.

Run it as a script (it evaluates itself on 20 ``pipelines`` test tasks):

    .venv/bin/python examples/custom_agent.py

or point the CLI at it by ``module:Class`` from the repository root (a module in the current
directory is found without installing it):

    .venv/bin/codegym eval --suite pipelines --episodes 20 --agent examples.custom_agent:ReturnLength
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


if __name__ == "__main__":
    from codegym.cli import main

    raise SystemExit(main(["eval", "--suite", "pipelines", "--episodes", "20", "--agent", f"{__name__}:ReturnLength"]))
