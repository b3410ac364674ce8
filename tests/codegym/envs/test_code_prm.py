"""CodePRM-v0: the env contract (docs/architecture.md), against the real local sandbox."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import codegym
from codegym import SUBMIT
from codegym.envs import CodePRMEnv
from codegym.tasks import Task, load_suite
from sandboxes import IOCase, TestSuite


class LengthScorer:
    """A real, deterministic LineScorer: Φ = number of code characters written so far / 100."""

    def __init__(self) -> None:
        self.total = 0
        self.appended: list[str] = []

    def reset(self, task: Task) -> float:
        self.total = 0
        self.appended = []
        return 0.0

    def score(self, line: str) -> float:
        self.total += len(line.strip())
        return self.total / 100

    def append(self, line: str) -> None:
        self.appended.append(line)


def _square_task() -> Task:
    tests = TestSuite(kind="io", entry_point="f", cases=tuple(IOCase((x,), x * x) for x in (0, 2, -3, 7)))
    return Task(
        task_id="toy/square",
        prompt='def f(x):\n    """Return x squared."""\n',
        code_prefix='def f(x):\n    """Return x squared."""\n',
        entry_point="f",
        tests=tests,
        solution="    y = x * x\n    return y",
        metadata={"suite": "toy", "steps": 2},
    )


def _replay(env: gym.Env, lines: list[str]) -> tuple[float, dict, bool, bool]:
    total = 0.0
    for line in lines:
        _, reward, terminated, truncated, info = env.step(line)
        total += reward
        if terminated or truncated:
            return reward, info, terminated, truncated
    raise AssertionError("episode did not end")


@pytest.fixture(scope="module")
def pipelines_env():
    env = gym.make("CodePRM-v0", suite="pipelines", prm=None)  # unit-test reward only
    yield env
    env.close()


def test_reference_replay_passes_on_many_pipelines_tasks(pipelines_env):
    rng = np.random.default_rng(0)
    for _ in range(25):
        obs, info = pipelines_env.reset(seed=int(rng.integers(1 << 30)))
        task = pipelines_env.unwrapped.task
        assert info["task"] is task and obs["prompt"] == task.prompt and obs["code"] == ""
        reward, info, terminated, truncated = _replay(pipelines_env, [*task.solution_lines, SUBMIT])
        assert terminated and not truncated
        assert reward == 1.0, info["exec"]
        assert info["passed"] and info["exec"]["status"] == "passed"
        assert info["exec"]["passed"] == info["exec"]["total"] > 0


def test_changing_one_line_drops_reward_below_one(pipelines_env):
    from agents.reference import corrupt_line

    rng = np.random.default_rng(1)
    for _ in range(25):
        pipelines_env.reset(seed=int(rng.integers(1 << 30)))
        task = pipelines_env.unwrapped.task
        lines = list(task.solution_lines)
        i = int(rng.integers(len(lines)))
        lines[i] = corrupt_line(lines[i], rng, task.solution_lines)
        assert lines[i] != task.solution_lines[i]
        reward, info, _, _ = _replay(pipelines_env, [*lines, SUBMIT])
        # A change that is a behavioural no-op would still pass; the suite's tests kill
        # single-line mutants, so the changed program must fail here.
        assert reward < 1.0, (task.solution_lines, lines)
        assert not info["passed"]


def test_observation_tracks_code_and_info_has_line_index():
    env = CodePRMEnv(tasks=[_square_task()])
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("    y = x * x")
    assert obs["code"] == "    y = x * x\n"
    assert info["line_index"] == 0 and info["prm_score"] is None and reward == 0.0
    assert not terminated and not truncated
    obs, reward, terminated, _, info = env.step("    return y")
    assert obs["code"] == "    y = x * x\n    return y\n" and info["line_index"] == 1
    _, reward, terminated, _, info = env.step(SUBMIT)
    assert terminated and reward == 1.0 and info["exec"]["passed"] == 4
    with pytest.raises(RuntimeError, match="reset"):
        env.step("    pass")
    env.close()


def test_fraction_test_reward():
    env = CodePRMEnv(tasks=[_square_task()], test_reward="fraction")
    env.reset(seed=0)
    # x * abs(x) is right for 0, 2, 7 but wrong for -3.
    reward, info, _, _ = _replay(env, ["    return x * abs(x)", SUBMIT])
    assert reward == pytest.approx(3 / 4) and not info["passed"]
    env.close()


def test_truncation_still_executes_the_program():
    env = CodePRMEnv(tasks=[_square_task()], max_lines=2)
    env.reset(seed=0)
    env.step("    y = x * x")
    _, reward, terminated, truncated, info = env.step("    return y")
    assert truncated and not terminated
    assert reward == 1.0 and info["exec"]["status"] == "passed"
    env.close()


def test_spec_time_limit_is_only_a_safety_net():
    assert gym.spec("CodePRM-v0").max_episode_steps is None  # max_lines alone ends episodes
    env = gym.make("CodePRM-v0", tasks=[_square_task()], max_lines=2, max_episode_steps=3)
    env.reset(seed=0)
    env.step("    y = x * x")
    _, reward, terminated, truncated, info = env.step("    return y")
    assert truncated and reward == 1.0 and info["passed"]
    env.close()


@pytest.mark.parametrize("mode", ["delta", "delta_open", "score", "paper", "none"])
def test_dense_reward_modes_and_neutral_lines(mode):
    scorer = LengthScorer()
    env = CodePRMEnv(tasks=[_square_task()], prm=scorer, reward_mode=mode, potential="score")
    env.reset(seed=0)
    lines = ["    y = x * x", "    # a comment", "", "    return y"]
    rewards, scores = [], []
    for line in lines:
        _, r, _, _, info = env.step(line)
        rewards.append(r)
        scores.append(info["prm_score"])
    assert scores[1] is None and scores[2] is None  # neutral lines are never scored
    assert rewards[1] == 0.0 and rewards[2] == 0.0
    assert scorer.appended == ["    # a comment", ""]  # but they still extend the scorer's state
    phi1, phi2 = len("y = x * x") / 100, (len("y = x * x") + len("return y")) / 100
    assert scores[0] == pytest.approx(phi1) and scores[3] == pytest.approx(phi2)
    expected = {"delta": [phi1, phi2 - phi1], "delta_open": [phi1, phi2 - phi1],
                "score": [phi1, phi2], "paper": [0.0, 0.0], "none": [0.0, 0.0]}[mode]  # fmt: skip
    assert [rewards[0], rewards[3]] == pytest.approx(expected)
    _, final, terminated, _, info = env.step(SUBMIT)
    close = -phi2 if mode == "delta" else 0.0  # closed shaping: Φ(terminal) = 0
    paper = (phi1 + phi2) / 4 if mode == "paper" else 0.0  # Σ s_m / T, T = 4 lines (2 neutral)
    assert terminated and final == pytest.approx(1.0 + close + paper)
    assert info["shaping_close"] == pytest.approx(close)
    assert info["reward_terms"] == pytest.approx({"dense": paper, "test": 1.0, "shaping_close": close})
    line_rewards = {"paper": [phi1 / 4, 0.0, 0.0, phi2 / 4]}.get(mode, rewards)
    assert info["line_rewards"] == pytest.approx(line_rewards)
    if mode == "delta_open":  # the open form telescopes to Φ(last) − Φ(empty)
        assert sum(rewards) == pytest.approx(phi2)
    if mode == "delta":  # the closed form's dense return is −Φ(empty) = 0 here
        assert sum(rewards) + close == pytest.approx(0.0)
    env.close()


class PrefixScorer:
    """A LineScorer with an arbitrary, non-zero Φ(empty): Φ = hash-like score of the prefix."""

    def reset(self, task: Task) -> float:
        self.lines: list[str] = []
        return 0.37

    def score(self, line: str) -> float:
        self.lines.append(line)
        return ((sum(map(len, self.lines)) * 7919) % 101) / 50.0 - 1.0


_ENDINGS = {
    "submit-pass": (["    y = x * x", "    return y", SUBMIT], {}),
    "submit-fail": (["    y = x + x", "    return y", SUBMIT], {}),
    "submit-empty": ([SUBMIT], {}),
    "truncated": (["    y = x * x", "    y = y + 1", "    return y"], {"max_lines": 3}),
    "truncated-pass": (["    y = x * x", "    return y"], {"max_lines": 2}),
    "invalid-first": (["    s = '\x00'"], {"invalid_action": "end"}),
    "invalid-later": (["    y = x * x", "    a = 1\n    b = 2"], {"invalid_action": "end"}),
    "invalid-type": (["    y = x * x", "    return y", 42], {"invalid_action": "end"}),
    "too-long": (["    y = x * x", "x" * 300], {"invalid_action": "end"}),
}


@pytest.mark.parametrize("ending", sorted(_ENDINGS))
def test_closed_shaping_dense_return_is_constant_on_every_ending(ending):
    """Φ(terminal) = 0 on every way an episode ends: the dense return is always −Φ(empty),
    so no ending (giving up with an invalid line included) can be better than another
    through the PRM; only the unit-test reward tells programs apart."""
    actions, kwargs = _ENDINGS[ending]
    env = CodePRMEnv(tasks=[_square_task()], prm=PrefixScorer(), reward_mode="delta", **kwargs)
    env.reset(seed=0)
    total, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    assert terminated or truncated
    test_reward = 1.0 if info["passed"] else 0.0
    assert total - test_reward == pytest.approx(-(0.37 + 1) / 2)  # −Φ(empty), probability scale
    if ending.startswith(("invalid", "too-long")):
        assert info["exec"]["status"] == "invalid_action" and not info["passed"]
        assert info["invalid_action"]
    env.close()


@pytest.mark.parametrize("mode", ["delta", "delta_open", "score", "paper", "none"])
@pytest.mark.parametrize("ending", sorted(_ENDINGS))
def test_reward_terms_sum_to_the_reward_on_every_step_and_ending(ending, mode):
    """info["reward_terms"] on every step sums to the reward exactly; on the final step,
    sum(line_rewards) + test + shaping_close is the episode's return."""
    actions, kwargs = _ENDINGS[ending]
    env = CodePRMEnv(tasks=[_square_task()], prm=PrefixScorer(), reward_mode=mode, **kwargs)
    env.reset(seed=0)
    total, steps = 0.0, 0
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        terms = info["reward_terms"]
        assert set(terms) == {"dense", "test", "shaping_close"}
        assert reward == terms["dense"] + terms["test"] + terms["shaping_close"]
        total += reward
        steps += 1
        if not (terminated or truncated):
            assert terms["test"] == terms["shaping_close"] == 0.0 and "line_rewards" not in info
            if mode == "paper":  # paid at the end, once T is known
                assert terms["dense"] == 0.0
        else:
            break
    assert terminated or truncated
    assert len(info["line_rewards"]) == len(env.lines) == info["num_lines"]
    final = info["reward_terms"]["test"] + info["reward_terms"]["shaping_close"]
    assert sum(info["line_rewards"]) + final == pytest.approx(total)
    assert info["reward_terms"]["test"] == (1.0 if info["passed"] else 0.0)
    if mode == "paper" and env.lines:
        scores = [0.0 if s is None else s for s in env.scores]
        assert info["line_rewards"] == pytest.approx([s / len(env.lines) for s in scores])
    env.close()


def test_verdict_is_exec_result_to_dict_on_every_ending():
    """info["exec"] is ExecResult.to_dict(): the env's last_result serialised, never a copy
    written by hand (an invalid action's verdict is an ExecResult with its own Status)."""
    from sandboxes import ExecResult, Status

    for ending in ("submit-pass", "truncated", "invalid-later"):
        actions, kwargs = _ENDINGS[ending]
        env = CodePRMEnv(tasks=[_square_task()], prm=None, **kwargs)
        env.reset(seed=0)
        info = {}
        for action in actions:
            *_, info = env.step(action)
        assert isinstance(env.last_result, ExecResult)
        assert info["exec"] == env.last_result.to_dict()
        assert env.last_result.status in set(Status)
        if ending.startswith("invalid"):
            assert env.last_result.status is Status.INVALID_ACTION and env.last_result.error == info["invalid_action"]
        env.close()


@pytest.mark.parametrize("potential", ["probability", "score"])
def test_potential_scale(potential):
    """On the probability scale a line the PRM calls certainly wrong (score −1) has Φ = 0, so
    ending the episode right after it earns nothing; on the raw scale it earns +1 at once."""

    class Certain:
        def reset(self, task):
            return 1.0

        def score(self, line):
            return 1.0 if "*" in line else -1.0

    env = CodePRMEnv(tasks=[_square_task()], prm=Certain(), potential=potential)
    env.reset(seed=0)
    _, r1, _, _, info1 = env.step("    y = x * x")
    _, r2, _, _, info2 = env.step("    return 0")
    _, r3, terminated, _, info3 = env.step(SUBMIT)
    assert terminated and not info3["passed"]
    assert info2["prm_score"] == -1.0
    if potential == "probability":
        assert (r1, r2, r3) == (0.0, -1.0, 0.0) and info2["potential"] == 0.0
    else:
        assert (r1, r2, r3) == (0.0, -2.0, 1.0) and info2["potential"] == -1.0
    with pytest.raises(ValueError, match="potential"):
        CodePRMEnv(tasks=[_square_task()], potential="logit")
    env.close()


def test_invalid_action_end_is_never_better_than_a_wrong_program():
    returns = {}
    for name, actions in (("invalid", ["    y = x * x", "\t\x00"]), ("wrong", ["    return 0", SUBMIT])):
        env = CodePRMEnv(tasks=[_square_task()], prm=PrefixScorer(), invalid_action="end")
        env.reset(seed=0)
        returns[name] = sum(env.step(a)[1] for a in actions)
        env.close()
    assert returns["invalid"] <= returns["wrong"]


def test_v0_is_the_closed_env_with_its_native_vector_env():
    spec = gym.spec("CodePRM-v0")
    assert codegym.ENV_ID == "CodePRM-v0"
    assert spec.entry_point == "codegym.envs.code_prm:CodePRMEnv"
    assert spec.vector_entry_point == "codegym.envs.vector:CodePRMVectorEnv"
    assert spec.kwargs.get("reward_mode", "delta") == "delta" and "potential" not in spec.kwargs
    # one version only: Gymnasium would call CodePRM-v0 out of date if a v1 existed
    assert [s.id for s in gym.registry.values() if s.name in ("CodePRM", "CodePRMDiscrete")] == [
        "CodePRM-v0", "CodePRMDiscrete-v0"]
    with pytest.raises(gym.error.VersionNotFound, match="v0"):
        gym.make("CodePRM-v1")


@pytest.mark.parametrize(
    "action, match",
    [
        ("    a = 1\n    b = 2", "single line"),
        ("    x = 1\r", "single line"),
        (42, "str"),
        ("x" * 300, "max_line_chars"),
        ("    s = '\x00'", "NUL"),
        ("    s = '\ud800'", "surrogate"),
    ],
)
def test_invalid_actions_raise_and_leave_state_unchanged(action, match):
    env = CodePRMEnv(tasks=[_square_task()])
    env.reset(seed=0)
    env.step("    y = x * x")
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert env.lines == ["    y = x * x"]
    reward, _, _, _ = _replay(env, ["    return y", SUBMIT])
    assert reward == 1.0
    env.close()


def test_bad_arguments_are_rejected_by_name():
    with pytest.raises(ValueError, match="reward_mode"):
        CodePRMEnv(tasks=[_square_task()], reward_mode="dense")
    with pytest.raises(ValueError, match="max_lines"):
        CodePRMEnv(tasks=[_square_task()], max_lines=0)
    with pytest.raises(ValueError, match="split"):
        CodePRMEnv(suite="pipelines", split="nope")
    with pytest.raises(ValueError, match="unknown suite"):
        CodePRMEnv(suite="nosuch")


def test_submit_is_in_the_action_space_and_never_code():
    env = CodePRMEnv(tasks=[_square_task()])
    assert env.action_space.contains(SUBMIT)
    assert codegym.SUBMIT == "\x04"
    with pytest.raises(SyntaxError):
        compile(SUBMIT + "\n", "<line>", "exec")
    env.close()


def test_check_env_passes():
    env = gym.make("CodePRM-v0", suite="pipelines")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_humaneval_prompts_fit_the_spaces():
    env = CodePRMEnv(suite="humaneval")
    suite = load_suite("humaneval")
    for i, task in enumerate(suite.take()):
        obs, _ = env.reset(options={"task_index": i})
        assert env.observation_space.contains(obs), task.task_id
        for line in task.solution_lines:
            assert env.action_space.contains(line), (task.task_id, line)
    env.close()


def test_render_ansi_shows_scores_and_result():
    env = CodePRMEnv(tasks=[_square_task()], prm=LengthScorer(), render_mode="ansi")
    env.reset(seed=0)
    _replay(env, ["    y = x * x", "    return y", SUBMIT])
    text = env.render()
    assert "+0.090" in text and "return y" in text and "passed: 4/4" in text
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    # Gymnasium's shared-memory buffers cannot carry Text observations (the parent reads the
    # buffer once, as fixed strings), so async vector envs use pipes: shared_memory=False.
    vector_kwargs = {"shared_memory": False} if mode == "async" else {}
    envs = gym.make_vec("CodePRM-v0", num_envs=2, vectorization_mode=mode, prm=None,
                        vector_kwargs=vector_kwargs, suite="pipelines", max_lines=8)
    obs, infos = envs.reset(seed=3)
    assert len(obs["prompt"]) == 2 and all(p.startswith("def solve") for p in obs["prompt"])
    # Write an obviously wrong line and submit: both episodes end with reward 0.
    envs.step(("    return 0", "    return 0"))
    _, rewards, terminated, truncated, infos = envs.step((SUBMIT, SUBMIT))
    assert terminated.all() and not truncated.any()
    assert (rewards == 0.0).all()
    envs.close()
