"""The reference and random agents, and loading agents by name or module:Class."""

from __future__ import annotations

import numpy as np
import pytest

from agents.random_agent import RandomAgent
from agents.reference import ReferenceAgent, corrupt_line
from codegym import SUBMIT
from codegym.envs.charset import LINE_CHARSET
from codegym.plugins import load_agent, parse_kv, resolve
from codegym.tasks import load_suite


def test_reference_replays_solution_then_submits():
    task = load_suite("pipelines").get("test", 0)
    agent = ReferenceAgent()
    agent.reset({"prompt": task.prompt, "code": ""}, {"task": task})
    lines = [agent.act({}) for _ in range(task.horizon + 2)]
    assert lines == [*task.solution_lines, SUBMIT, SUBMIT]


def test_reference_corruption_changes_lines_reproducibly():
    tasks = load_suite("pipelines").take(20, "test")
    def run(seed):
        agent = ReferenceAgent(corrupt=0.5, seed=seed)
        out = []
        for task in tasks:
            agent.reset({}, {"task": task})
            out.append([agent.act({}) for _ in range(task.horizon)])
        return out
    a, b = run(7), run(7)
    assert a == b
    changed = sum(x != y for lines, t in zip(a, tasks) for x, y in zip(lines, t.solution_lines))
    total = sum(t.horizon for t in tasks)
    assert 0.3 * total < changed < 0.7 * total


def test_corrupt_line_keeps_indentation_and_differs():
    rng = np.random.default_rng(0)
    for line in ["    xs = [x + 3 for x in xs]", "    return sum(xs)", "        pass"]:
        for _ in range(20):
            new = corrupt_line(line, rng, ["    xs = xs[::-1]"])
            assert new != line and new.startswith(line[: len(line) - len(line.lstrip())])


def test_random_agent_emits_valid_lines_and_submits():
    agent = RandomAgent(max_lines=4, seed=0)
    charset = set(LINE_CHARSET)
    for _ in range(10):
        agent.reset({}, {})
        lines = []
        while (line := agent.act({})) != SUBMIT:
            assert "\n" not in line and set(line) <= charset
            lines.append(line)
        assert 1 <= len(lines) <= 4


def test_batched_slots_are_independent():
    tasks = load_suite("pipelines").take(3, "test")
    agent = ReferenceAgent()
    agent.reset_batch([{}] * 3, [{"task": t} for t in tasks])
    first = agent.act_batch([{}, None, {}])
    assert first == [tasks[0].solution_lines[0], None, tasks[2].solution_lines[0]]
    with pytest.raises(ValueError, match="reset_batch"):
        agent.act_batch([{}])


def test_load_agent_by_name_and_module_path():
    assert isinstance(load_agent("reference"), ReferenceAgent)
    assert isinstance(load_agent("agents.random_agent:RandomAgent", seed=1), RandomAgent)
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        resolve("nope")
    with pytest.raises(ValueError, match="cannot import"):
        resolve("no_such_module:X")
    with pytest.raises(ValueError, match="corrupt"):
        load_agent("reference", corrupt=2.0)
    assert parse_kv(["corrupt=0.5", "n=3", "flag=true", "name=x"]) == {
        "corrupt": 0.5, "n": 3, "flag": True, "name": "x"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_kv(["oops"])
