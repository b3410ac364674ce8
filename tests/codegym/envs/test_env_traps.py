"""The traps a new user met in CodePRM (issue: "a new user's first hour"), each closed.

Every test here failed on the version before the fix: dense rewards were off by default,
async vector envs returned prompts of zeros, ``gym.make`` trained on the test split, a
``max_lines`` above 64 was cut by ``TimeLimit`` without running the program, an emoji in a
prompt raised, and ``render_mode="human"`` reprinted the prompt at every step.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

import codegym
from codegym import SUBMIT
from codegym.envs import CodePRMEnv
from codegym.tasks import Task
from sandboxes import IOCase, TestSuite


def _task(prompt: str = 'def f(x):\n    """Return x + 1."""\n', suite: str = "toy") -> Task:
    tests = TestSuite(kind="io", entry_point="f", cases=tuple(IOCase((x,), x + 1) for x in (0, 2, -3, 7)))
    return Task(task_id=f"{suite}/inc", prompt=prompt, code_prefix='def f(x):\n', entry_point="f",
                tests=tests, solution="    return x + 1", metadata={"suite": suite, "steps": 1})


def test_gym_make_gives_dense_prm_rewards_by_default_and_none_turns_them_off():
    env = gym.make(codegym.ENV_ID)
    assert env.unwrapped.prm_source == "embedded default"
    _, info = env.reset(seed=0)
    rewards = [env.step(line)[1] for line in info["task"].solution_lines]
    assert any(abs(r) > 1e-6 for r in rewards), rewards  # the PRM scores every line
    *_, final_info = env.step(SUBMIT)
    assert final_info["passed"]
    env.close()
    off = gym.make(codegym.ENV_ID, prm=None)
    _, info = off.reset(seed=0)
    assert all(off.step(line)[1] == 0.0 for line in info["task"].solution_lines)
    assert off.unwrapped.prm_source == "none"
    off.close()


def test_no_default_prm_on_other_suites_is_said_clearly(monkeypatch):
    from codegym.envs import code_prm

    monkeypatch.setattr(code_prm, "_WARNED_NO_PRM", set())  # said once per process
    with pytest.warns(UserWarning, match="no default PRM applies to suite 'humaneval'"):
        env = gym.make(codegym.ENV_ID, suite="humaneval")
    assert env.unwrapped.scorer is None and env.unwrapped.prm_source == "none"
    env.close()
    forced = CodePRMEnv(suite="humaneval", prm="default")
    assert forced.prm_source == "embedded default" and forced.scorer is not None
    forced.close()
    monkeypatch.setattr(code_prm, "_WARNED_NO_PRM", set())
    with pytest.warns(UserWarning, match="no default PRM") as record:
        CodePRMEnv(suite="humaneval").close()
    assert record[0].filename == __file__  # the warning points at the line that made the env


def test_async_vector_env_with_gymnasium_defaults_raises_with_the_fix():
    with pytest.raises(ValueError, match="shared_memory': False"):
        gym.make_vec(codegym.ENV_ID, num_envs=2, vectorization_mode="async", prm=None)


def test_async_vector_env_without_shared_memory_returns_real_prompts():
    envs = gym.make_vec(codegym.ENV_ID, num_envs=2, vectorization_mode="async", prm=None,
                        vector_kwargs={"shared_memory": False})
    obs, _ = envs.reset(seed=1)
    assert all(p.startswith("def solve(xs):") for p in obs["prompt"])
    envs.close()


def test_gym_make_draws_training_tasks_by_default():
    env = gym.make(codegym.ENV_ID, prm=None)
    assert env.unwrapped.split == "train"
    ids = {env.reset(seed=s)[1]["task_id"] for s in range(5)}
    assert all("/train/" in i for i in ids), ids
    env.close()
    test_env = gym.make(codegym.ENV_ID, prm=None, split="test")
    assert "/test/" in test_env.reset(seed=0)[1]["task_id"]
    test_env.close()


def test_max_lines_alone_controls_the_episode_and_the_program_always_runs():
    env = gym.make(codegym.ENV_ID, tasks=[_task()], prm=None, max_lines=80)
    env.reset(seed=0)
    for i in range(79):
        _, _, terminated, truncated, _ = env.step("    x = x")
        assert not (terminated or truncated), f"cut at line {i + 1}"
    _, reward, terminated, truncated, info = env.step("    return x + 1")
    assert truncated and not terminated
    assert info["exec"]["status"] == "passed" and reward == 1.0  # the program ran
    env.close()


def test_unicode_prompts_and_lines_work():
    prompt = 'def f(x):\n    """Return x + 1 🚀 — naïve 数据."""\n'
    env = CodePRMEnv(tasks=[_task(prompt)], prm=None)
    obs, _ = env.reset(seed=0)
    assert obs["prompt"] == prompt and env.observation_space.contains(obs)
    env.step("    s = 'héllo 😀'  # ünïcode")
    _, reward, terminated, _, info = env.step("    return x + 1")
    assert not terminated
    _, reward, terminated, _, info = env.step(SUBMIT)
    assert terminated and info["passed"] and reward == 1.0
    env.close()


def test_human_render_prints_the_prompt_once_each_line_once_and_the_verdict(capsys):
    env = CodePRMEnv(tasks=[_task()], prm=None, render_mode="human")
    env.reset(seed=0)
    for line in ("    y = x + 1", "    return y", SUBMIT):
        env.step(line)
    out = capsys.readouterr().out
    assert out.count("Return x + 1.") == 1
    assert out.count("y = x + 1") == 1 and out.count("return y") == 1
    assert "-> passed: 4/4 tests" in out
    env.close()


def test_the_id_users_call_is_current_and_the_open_shaping_stays_reachable():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "out of date" deprecation for the id users call
        env = gym.make("CodePRM-v0", prm=None)
    assert env.unwrapped.reward_mode == "delta" and env.spec.max_episode_steps is None
    env.close()
    open_env = gym.make("CodePRM-v0", tasks=[_task()], prm=LengthScorer(), reward_mode="delta_open")
    open_env.reset(seed=0)
    open_env.step("    return x + 1")
    *_, info = open_env.step(SUBMIT)
    assert info["shaping_close"] == 0.0 and info["reward_terms"]["shaping_close"] == 0.0
    open_env.close()


class LengthScorer:
    """Φ = characters written / 100 (a real, deterministic LineScorer)."""

    def reset(self, task: Task) -> float:
        self.total = 0
        return 0.0

    def score(self, line: str) -> float:
        self.total += len(line.strip())
        return self.total / 100
