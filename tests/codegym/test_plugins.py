"""Loading agents by name or ``module:Class``: constructor arguments checked by signature."""

from __future__ import annotations

import sys

import pytest

from agents import Agent
from codegym.plugins import accepted_arguments, build_agent


class NoConstructor(Agent):
    def act(self, obs):
        return "    return 0"


def test_an_agent_without_constructor_gets_no_seed_and_loads():
    agent = build_agent(f"{__name__}:NoConstructor", {}, optional={"seed": 3})
    assert isinstance(agent, NoConstructor)


def test_optional_seed_reaches_agents_that_take_one():
    agent = build_agent("random", {}, optional={"seed": 5})
    again = build_agent("random", {}, optional={"seed": 5})
    assert agent.rng.integers(1 << 30) == again.rng.integers(1 << 30)


def test_arguments_are_followed_through_kwargs_to_the_parent():
    names, open_ = accepted_arguments(build_agent.__globals__["resolve"]("ppo"))
    assert not open_ and {"model", "temperature", "greedy", "seed"} <= names


def test_unknown_keys_are_refused_with_the_accepted_names():
    with pytest.raises(ValueError, match=r"does not take --agent-arg corupt=\.\.\.; it accepts: corrupt, seed"):
        build_agent("reference", {"corupt": 0.2})
    with pytest.raises(ValueError, match="does not take --model; it accepts: no arguments"):
        build_agent(f"{__name__}:NoConstructor", {"model": "x"})


def test_module_in_the_working_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "cwdagent_pkg").mkdir()
    (tmp_path / "cwdagent_pkg" / "a.py").write_text(
        "from agents import Agent\nclass A(Agent):\n    def act(self, obs):\n        return 'x'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert type(build_agent("cwdagent_pkg.a:A", {})).__name__ == "A"
