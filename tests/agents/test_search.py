"""The ``bestofn`` and ``beam`` agents in the rollout loop: with one candidate they are plain
sampling; with the oracle, best-of-N reaches pass@N on real tasks; ``codegym eval`` runs them
end to end and reports the budget they spent."""

from __future__ import annotations

import json

import pytest
import torch

from agents.hf import HFAgent
from agents.search import BeamSearchAgent, BestOfNAgent
from codegym.cli import main
from codegym.rollout import run_episodes
from codegym.search import ReplayAgent
from codegym.tasks import load_suite

ENV = {"prm": None, "reward_mode": "none", "max_lines": 6}


@pytest.fixture(scope="module")
def tasks():
    torch.set_num_threads(1)
    return load_suite("pipelines", min_steps=1, max_steps=3, seed=0).take(5, "test")


def _rollout(agent, tasks, samples: int = 1):
    records = run_episodes(agent, tasks, samples=samples, num_envs=len(tasks) * samples, env_kwargs=ENV)
    return [(r.task.task_id, r.lines, r.passed, r.status) for r in records]


@pytest.mark.parametrize("make", [
    lambda m, p: BestOfNAgent(model=m, prm=p, n=1, seed=7, max_lines=6, max_line_tokens=10),
    lambda m, p: BeamSearchAgent(model=m, prm=p, beams=1, k=1, seed=7, max_lines=6, max_line_tokens=10),
], ids=["bestofn-n1", "beam-1x1"])  # fmt: skip
def test_one_candidate_is_plain_sampling(make, tiny_policy_dir, tiny_prm_dir, tasks) -> None:
    plain = _rollout(HFAgent(model=str(tiny_policy_dir), seed=7, max_line_tokens=10), tasks, samples=2)
    agent = make(str(tiny_policy_dir), str(tiny_prm_dir))
    searched = _rollout(agent, tasks, samples=2)
    assert searched == plain
    assert sum(len(lines) for _, lines, _, _ in plain) > len(plain)  # programs of several lines
    stats = [agent.episode_stats(slot) for slot in range(len(searched))]
    assert [s["budget"]["sampled_lines"] for s in stats] == [len(lines) for _, lines, _, _ in plain]
    assert all(s["budget"]["programs"] == 1 for s in stats)


def test_best_of_n_with_the_oracle_reaches_pass_at_n() -> None:
    torch.set_num_threads(1)
    tasks = load_suite("pipelines", min_steps=5, max_steps=7, seed=0).take(8, "test")
    agent = BestOfNAgent(model="default", prm="oracle", n=4, seed=0, max_lines=12)
    results = []
    records = run_episodes(agent, tasks, num_envs=8, env_kwargs={**ENV, "max_lines": 12},
                           on_wave=lambda wave: results.extend(agent.results[: len(wave)]))  # fmt: skip
    agent.close()
    # every candidate run through the env: the harness's verdicts, not the oracle's
    programs = [(r.task.task_id, c.lines) for r in results for c in r.candidates]
    verdicts = [rec.passed for rec in run_episodes(ReplayAgent(programs), [r.task for r in results for _ in r.candidates],
                                                   num_envs=16, env_kwargs={**ENV, "max_lines": 12})]  # fmt: skip
    passes = [verdicts[4 * t : 4 * t + 4] for t in range(len(tasks))]
    assert [rec.passed for rec in records] == [any(p) for p in passes]
    assert any(0 < sum(p) < 4 for p in passes)  # some task where a random pick could fail


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_codegym_eval_runs_search_agents_and_reports_their_budget(tiny_policy_dir, tiny_prm_dir, tmp_path, capsys) -> None:
    plain = ["eval", "--suite", "pipelines", "--max-task-lines", "3", "--model", str(tiny_policy_dir),
             "--episodes", "3", "--max-lines", "5", "--agent-arg", "max_line_tokens=10"]
    common = [*plain, "--agent-arg", "max_lines=5"]
    assert main([*common, "--agent", "bestofn", "--agent-arg", f"prm={tiny_prm_dir}", "--agent-arg", "n=3",
                 "--agent-arg", "aggregation=min", "--out", str(tmp_path / "b.jsonl")]) == 0  # fmt: skip
    rows = _rows(tmp_path / "b.jsonl")
    assert len(rows) == 3 and all(r["budget"]["programs"] == 3 and r["search"]["candidates"] == 3 for r in rows)
    assert all(r["search"]["aggregation"] == "min" and r["budget"]["sampled_lines"] >= r["num_lines"] for r in rows)
    summary = json.loads((tmp_path / "b.summary.json").read_text())
    assert summary["budget"]["total"]["sampled_lines"] == sum(r["budget"]["sampled_lines"] for r in rows)
    assert "budget: " in capsys.readouterr().out
    assert main([*common, "--agent", "beam", "--agent-arg", f"prm={tiny_prm_dir}", "--agent-arg", "beams=2",
                 "--agent-arg", "k=2", "--out", str(tmp_path / "beam.jsonl")]) == 0  # fmt: skip
    rows = _rows(tmp_path / "beam.jsonl")
    assert all(0 < r["budget"]["sampled_lines"] <= 4 * 5 for r in rows)
    assert main([*plain, "--agent", "hf", "--out", str(tmp_path / "hf.jsonl")]) == 0
    assert all(r["budget"]["sampled_lines"] == r["num_lines"] for r in _rows(tmp_path / "hf.jsonl"))


def test_bad_search_arguments_are_refused(tiny_policy_dir, capsys) -> None:
    base = ["eval", "--suite", "pipelines", "--episodes", "1", "--model", str(tiny_policy_dir)]
    assert main([*base, "--agent", "bestofn", "--agent-arg", "n=0"]) == 2
    assert "n must be an int >= 1" in capsys.readouterr().err
    assert main([*base, "--agent", "beam", "--agent-arg", "aggregation=median"]) == 2
    assert "aggregation must be one of" in capsys.readouterr().err
    assert main(["eval", "--suite", "pipelines", "--episodes", "1", "--agent", "bestofn"]) == 2
    assert "needs a policy" in capsys.readouterr().err
