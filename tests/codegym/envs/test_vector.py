"""CodePRMVectorEnv: a native Gymnasium VectorEnv with the single env's rules (real sandbox,
real PRM), batched PRM scoring, every autoreset mode, seeding, invalid actions, close."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import codegym
from codegym import SUBMIT
from codegym.envs import CodePRMEnv, CodePRMVectorEnv
from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.tasks import Task
from sandboxes import IOCase, Sandbox, TestSuite, make_sandbox

PIPELINES = {"suite": "pipelines", "suite_kwargs": {"min_steps": 2, "max_steps": 7}, "max_lines": 6}


@pytest.fixture(scope="module")
def box():
    with make_sandbox("local", workers=2) as sandbox:
        yield sandbox


def _square_task() -> Task:
    tests = TestSuite(kind="io", entry_point="f", cases=tuple(IOCase((x,), x * x) for x in (0, 2, -3, 7)))
    return Task("toy/square", 'def f(x):\n    """Return x squared."""\n', 'def f(x):\n    """Return x squared."""\n',
                "f", tests, "    y = x * x\n    return y", {"suite": "toy", "steps": 2})  # fmt: skip


class PrefixScorer:
    """A real, deterministic LineScorer with a non-zero Φ(empty)."""

    def reset(self, task: Task) -> float:
        self.lines: list[str] = []
        return 0.37

    def score(self, line: str) -> float:
        self.lines.append(line)
        return ((sum(map(len, self.lines)) * 7919) % 101) / 50.0 - 1.0

    def append(self, line: str) -> None:
        self.lines.append(line)


def script(task: Task, episode: int) -> list[str]:
    """A deterministic episode on ``task``: the reference, a comment, a wrong line or an early
    submission, depending on ``episode`` (some runs past ``max_lines``: truncation)."""
    ref = list(task.solution_lines)
    kind = episode % 4
    if kind == 1:
        ref.insert(1, "    # the next step")
    elif kind == 2:
        ref[0] = "    xs = [x + 1 for x in xs]"
    elif kind == 3:
        ref = ref[:1]
    return ref + [SUBMIT]


def run_vector(env, seed: int, episodes: int) -> list[list[list[tuple]]]:
    """Per slot, its first ``episodes`` episodes as lists of step records (NEXT_STEP mode)."""
    n = env.num_envs
    _, infos = env.reset(seed=seed)
    todo = [script(infos["task"][i], 0) for i in range(n)]
    done = [[] for _ in range(n)]
    current: list[list[tuple]] = [[] for _ in range(n)]
    while min(len(d) for d in done) < episodes:
        actions = [todo[i].pop(0) if todo[i] else SUBMIT for i in range(n)]
        _, rewards, term, trunc, infos = env.step(actions)
        terms = infos["reward_terms"]
        for i in range(n):
            if infos.get("_task", np.zeros(n, bool))[i]:  # autoreset step
                assert rewards[i] == 0.0 and not term[i] and not trunc[i]
                todo[i] = script(infos["task"][i], len(done[i]))
                continue
            score = infos["prm_score"][i] if infos.get("_prm_score", np.zeros(n, bool))[i] else None
            status = infos["exec"]["status"][i] if term[i] or trunc[i] else None
            step_terms = (terms["dense"][i], terms["test"][i], terms["shaping_close"][i])
            current[i].append((rewards[i], bool(term[i]), bool(trunc[i]), score, status, step_terms))
            if term[i] or trunc[i]:
                done[i].append(current[i])
                current[i] = []
    return [d[:episodes] for d in done]


def run_single(env, seed: int, episodes: int) -> list[list[tuple]]:
    """The same script on one single env (reset with ``seed`` once, then unseeded)."""
    out = []
    _, info = env.reset(seed=seed)
    for e in range(episodes):
        if e:
            _, info = env.reset()
        steps = []
        for action in script(info["task"], e):
            _, r, term, trunc, step_info = env.step(action)
            t = step_info["reward_terms"]
            status = step_info["exec"]["status"] if term or trunc else None
            steps.append((r, term, trunc, step_info["prm_score"], status, (t["dense"], t["test"], t["shaping_close"])))
            if term or trunc:
                break
        out.append(steps)
    return out


def assert_same(vector_eps: list[list[tuple]], single_eps: list[list[tuple]]) -> None:
    assert len(vector_eps) == len(single_eps)
    for v_ep, s_ep in zip(vector_eps, single_eps):
        assert len(v_ep) == len(s_ep)
        for v, s in zip(v_ep, s_ep):
            assert v[1:3] == s[1:3] and v[4] == s[4]  # flags and verdict
            assert (v[3] is None) == (s[3] is None)
            if v[3] is not None:
                assert abs(v[3] - s[3]) < 1e-5
            assert abs(v[0] - s[0]) < 1e-5 and np.allclose(v[5], s[5], atol=1e-5)


@pytest.mark.parametrize("reward_mode", ["delta", "paper"])
def test_equal_to_n_single_envs_with_the_embedded_prm(box, reward_mode):
    """Same seeds -> same tasks, PRM scores and rewards within 1e-5, same verdicts, over
    several episodes per slot (autoreset draws from each slot's own generator)."""
    n, seed, episodes = 3, 11, 4
    kw = {**PIPELINES, "reward_mode": reward_mode, "sandbox": box}
    venv = gym.make_vec("CodePRM-v0", num_envs=n, **kw)
    assert isinstance(venv.unwrapped, CodePRMVectorEnv)
    assert venv.unwrapped.prm_source == "embedded default"
    vector = run_vector(venv, seed, episodes)
    venv.close()
    statuses = set()
    for i in range(n):
        env = gym.make("CodePRM-v0", **kw)
        assert_same(vector[i], run_single(env, seed + i, episodes))
        env.close()
        statuses |= {step[4] for ep in vector[i] for step in ep if step[4]}
    assert {"passed", "failed"} <= statuses  # the script passes and fails programs
    assert any(step[2] for ep in vector[0] + vector[1] + vector[2] for step in ep)  # and truncates
    assert any(step[3] not in (None, 0.0) for ep in vector[0] for step in ep)  # real PRM scores


def test_per_slot_line_scorers_equal_single_envs(box):
    """A LineScorer that is not a PRM (the oracle) works as one scorer per slot."""
    cache = VerdictCache()
    kw = {**PIPELINES, "sandbox": box}
    venv = CodePRMVectorEnv(2, prm=[ReferenceCompletionScorer(box, cache=cache) for _ in range(2)], **kw)
    assert venv.prm_source == "ReferenceCompletionScorer per env"
    vector = run_vector(venv, 3, 3)
    venv.close()
    for i in range(2):
        env = CodePRMEnv(prm=ReferenceCompletionScorer(box, cache=cache), **kw)
        assert_same(vector[i], run_single(env, 3 + i, 3))
        env.close()
    rewards = [step[0] for ep in vector[0] + vector[1] for step in ep]
    assert any(r < -0.5 for r in rewards)  # the oracle's dense reward: −1 for a broken prefix


def test_spaces_reset_and_step_follow_the_vector_api(box):
    """check_env-style: batched spaces contain what reset/step return; types and shapes."""
    env = gym.make_vec("CodePRM-v0", num_envs=3, vectorization_mode="vector_entry_point", prm=None, sandbox=box)
    v = env.unwrapped
    assert v.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP and v.num_envs == 3
    assert v.observation_space == batch_space(v.single_observation_space, 3)
    assert v.action_space == batch_space(v.single_action_space, 3)
    assert v.single_observation_space == CodePRMEnv(prm=None).observation_space
    obs, infos = env.reset(seed=0)
    assert env.observation_space.contains(obs) and isinstance(infos, dict)
    assert infos["_task_id"].all() and len(infos["task_id"]) == 3
    for actions in (("    return 0", "    # c", ""), (SUBMIT, "    return 1", SUBMIT)):
        assert env.action_space.contains(actions)
        obs, rewards, term, trunc, infos = env.step(actions)
        assert env.observation_space.contains(obs)
        for arr, dtype in ((rewards, np.float64), (term, np.bool_), (trunc, np.bool_)):
            assert isinstance(arr, np.ndarray) and arr.shape == (3,) and arr.dtype == dtype
    assert obs["code"][1] == "    # c\n    return 1\n"
    assert term.tolist() == [True, False, True] and infos["_exec"].tolist() == [True, False, True]
    assert infos["exec"]["status"][0] == "failed" and infos["exec"]["_status"].tolist() == [True, False, True]
    assert isinstance(env.action_space.sample(), tuple)
    env.close()


def test_seeding_is_deterministic_and_per_slot(box):
    env = CodePRMVectorEnv(3, prm=None, sandbox=box)
    ids = [env.reset(seed=7)[1]["task_id"].tolist() for _ in range(2)]
    assert ids[0] == ids[1]
    assert env.reset(seed=8)[1]["task_id"].tolist()[:2] == ids[0][1:]  # slot i is seeded s + i
    assert env.reset(seed=[9, 8, None])[1]["task_id"].tolist()[1] == ids[0][1]
    for i in range(3):
        single = CodePRMEnv(prm=None)
        assert single.reset(seed=7 + i)[1]["task_id"] == ids[0][i]
        single.close()
    with pytest.raises(ValueError, match="one per env"):
        env.reset(seed=[1, 2])
    env.close()


def test_reset_options_give_per_slot_tasks(box):
    task = _square_task()
    env = CodePRMVectorEnv(2, tasks=[task], prm=None, sandbox=box)
    obs, infos = env.reset(options={"tasks": [task, None]})
    assert obs["prompt"] == (task.prompt, task.prompt)
    assert env.reset(options={"task_index": [0, 0]})[1]["task_id"].tolist() == ["toy/square"] * 2
    with pytest.raises(ValueError, match="one task per env"):
        env.reset(options={"task": task})
    with pytest.raises(ValueError, match="one entry per env"):
        env.reset(options={"tasks": [task]})
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, False]})
    env.close()


def test_next_step_autoreset_ignores_the_action_of_an_ended_slot(box):
    task = _square_task()
    env = CodePRMVectorEnv(2, tasks=[task], prm=[PrefixScorer(), PrefixScorer()], sandbox=box)
    env.reset(seed=0)
    env.step(("    return x * x", "    y = x * x"))
    obs, rewards, term, trunc, infos = env.step((SUBMIT, "    return y"))
    assert term.tolist() == [True, False] and obs["code"][0] == "    return x * x\n"
    assert infos["passed"][0] and infos["_passed"].tolist() == [True, False]
    # the next step resets slot 0 and ignores its action, even one that is invalid
    obs, rewards, term, trunc, infos = env.step((42, SUBMIT))
    assert rewards[0] == 0.0 and not term[0] and not trunc[0] and obs["code"][0] == ""
    assert infos["_task"].tolist() == [True, False] and infos["_exec"].tolist() == [False, True]
    assert infos["reward_terms"]["_dense"].all() and infos["reward_terms"]["dense"][0] == 0.0
    assert infos["passed"][1] and term[1]
    env.close()


def test_same_step_autoreset_returns_the_final_obs_in_info(box):
    task = _square_task()
    env = CodePRMVectorEnv(2, tasks=[task], prm=[PrefixScorer(), PrefixScorer()], sandbox=box,
                           autoreset_mode="SameStep")  # fmt: skip
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    env.reset(seed=0)
    env.step(("    return x * x", "    y = x * x"))
    obs, rewards, term, trunc, infos = env.step((SUBMIT, "    return y"))
    assert term.tolist() == [True, False] and obs["code"] == ("", "    y = x * x\n    return y\n")
    assert infos["_final_obs"].tolist() == [True, False]
    assert infos["final_obs"][0]["code"] == "    return x * x\n"
    assert infos["final_info"]["exec"]["status"][0] == "passed" and infos["final_info"]["_exec"][0]
    assert infos["_task_id"].tolist() == [True, False]  # slot 0's new episode started
    terms = infos["reward_terms"]
    assert (terms["dense"] + terms["test"] + terms["shaping_close"] == rewards).all()
    final = infos["final_info"]["reward_terms"]
    assert rewards[0] == final["dense"][0] + final["test"][0] + final["shaping_close"][0]
    assert final["test"][0] == 1.0 and final["shaping_close"][0] < 0.0  # passed, closed shaping
    env.close()


def test_infos_of_slots_with_and_without_a_score_merge(box):
    """One slot truncates on a scored line while another submits (no score) in the same
    step: the vector info keeps the score where there is one and masks the other."""
    env = CodePRMVectorEnv(2, tasks=[_square_task()], prm=[PrefixScorer(), PrefixScorer()], sandbox=box,
                           max_lines=2, autoreset_mode=AutoresetMode.SAME_STEP)  # fmt: skip
    env.reset(seed=0)
    env.step(("    y = x * x", "    y = x * x"))
    _, rewards, term, trunc, infos = env.step(("    return y", SUBMIT))
    assert trunc.tolist() == [True, False] and term.tolist() == [False, True]
    final = infos["final_info"]
    assert final["_prm_score"].tolist() == [True, False] and final["prm_score"].dtype == np.float64
    assert final["exec"]["status"].tolist() == ["passed", "failed"]
    env.close()


def test_disabled_autoreset_leaves_ended_slots_alone_until_reset(box):
    task = _square_task()
    env = CodePRMVectorEnv(2, tasks=[task], prm=None, sandbox=box, autoreset_mode=AutoresetMode.DISABLED)
    env.reset(seed=0)
    env.step(("    return x * x", "    y = x * x"))
    _, _, term, _, _ = env.step((SUBMIT, "    return y"))
    assert term.tolist() == [True, False]
    obs, rewards, term, trunc, infos = env.step((None, SUBMIT))
    assert obs["code"][0] == "    return x * x\n" and rewards[0] == 0.0 and not term[0]
    assert infos["_exec"].tolist() == [False, True] and term[1]
    with pytest.raises(ValueError, match="reset_mask"):
        env.step((SUBMIT, None))
    obs, infos = env.reset(options={"reset_mask": np.array([True, False])})
    assert obs["code"] == ("", "    y = x * x\n    return y\n") and infos["_task_id"].tolist() == [True, False]
    obs, *_ = env.step(("    return x", None))
    assert obs["code"][0] == "    return x\n"
    env.close()


_ENDINGS = {
    "submit-pass": (["    y = x * x", "    return y", SUBMIT], {}),
    "submit-fail": (["    y = x + x", "    # c", "    return y", SUBMIT], {}),
    "submit-empty": ([SUBMIT], {}),
    "truncated": (["    y = x * x", "    y = y + 1", "    return y"], {"max_lines": 3}),
    "invalid": (["    y = x * x", "    s = '\x00'"], {"invalid_action": "end"}),
}


@pytest.mark.parametrize("mode", ["delta", "delta_open", "score", "paper", "none"])
def test_reward_terms_sum_to_the_reward_on_every_ending(box, mode):
    """Every step of every slot: reward == dense + test + shaping_close; at the end,
    sum(line_rewards) + test + shaping_close == the episode's return."""
    names = sorted(_ENDINGS)
    for name in names:
        actions, kwargs = _ENDINGS[name]
        env = CodePRMVectorEnv(2, tasks=[_square_task()], prm=[PrefixScorer(), PrefixScorer()],
                               reward_mode=mode, sandbox=box, **kwargs)  # fmt: skip
        env.reset(seed=0)
        total = np.zeros(2)
        for action in actions:
            _, rewards, term, trunc, infos = env.step((action, action))
            t = infos["reward_terms"]
            assert (t["dense"] + t["test"] + t["shaping_close"] == rewards).all(), name
            total += rewards
        assert (term | trunc).all(), name
        for i in range(2):
            final = t["test"][i] + t["shaping_close"][i]
            assert sum(infos["line_rewards"][i]) + final == pytest.approx(total[i]), (name, mode)
            if mode == "delta":  # closed: the dense return is −Φ(empty) on every ending
                assert total[i] - t["test"][i] == pytest.approx(-(0.37 + 1) / 2), name
        if name == "invalid":
            assert infos["exec"]["status"][0] == "invalid_action" and infos["invalid_action"][0]
        env.close()


def test_invalid_actions_raise_naming_the_slot_and_change_nothing(box):
    env = CodePRMVectorEnv(2, tasks=[_square_task()], prm=[PrefixScorer(), PrefixScorer()], sandbox=box)
    env.reset(seed=0)
    env.step(("    y = x * x", "    y = x * x"))
    for actions, match in (
        (("    return y", "    a = 1\n    b = 2"), r"actions\[1\].*single line"),
        ((SUBMIT, 42), r"actions\[1\].*str"),
        (("x" * 300, SUBMIT), r"actions\[0\].*max_line_chars"),
        ((SUBMIT,), "one per env"),
        ("    return y", "sequence"),
    ):
        with pytest.raises(ValueError, match=match):
            env.step(actions)
    assert [ep.lines for ep in env.episodes] == [["    y = x * x"]] * 2  # nothing ran
    _, rewards, term, _, infos = env.step((SUBMIT, SUBMIT))
    assert term.all() and infos["exec"]["status"].tolist() == ["failed", "failed"]
    env.close()


def test_bad_arguments_are_rejected_by_name():
    with pytest.raises(ValueError, match="num_envs"):
        CodePRMVectorEnv(0, prm=None)
    with pytest.raises(ValueError, match="autoreset_mode"):
        CodePRMVectorEnv(2, prm=None, autoreset_mode="sideways")
    with pytest.raises(ValueError, match="workers"):
        CodePRMVectorEnv(2, prm=None, workers=0)
    with pytest.raises(ValueError, match="reward_mode"):
        CodePRMVectorEnv(2, prm=None, reward_mode="dense")
    with pytest.raises(ValueError, match="one per env"):
        CodePRMVectorEnv(2, prm=PrefixScorer())
    with pytest.raises(ValueError, match="one per env"):
        CodePRMVectorEnv(2, prm=[PrefixScorer()])
    scorer = PrefixScorer()
    with pytest.raises(ValueError, match="its own"):
        CodePRMVectorEnv(2, prm=[scorer, scorer])
    with pytest.raises(RuntimeError, match="reset"):
        CodePRMVectorEnv(2, prm=None).step((SUBMIT, SUBMIT))


def test_close_is_idempotent_and_spares_a_given_sandbox(box):
    env = CodePRMVectorEnv(2, tasks=[_square_task()], prm=None, sandbox=box)
    env.reset(seed=0)
    env.step((SUBMIT, SUBMIT))
    env.close()
    env.close()
    assert env.closed
    assert box.run("def f(x):\n    return x * x\n", _square_task().tests).ok  # still usable
    own = CodePRMVectorEnv(2, tasks=[_square_task()], prm=None, workers=1)
    own.reset(seed=0)
    own.step((SUBMIT, SUBMIT))
    made = own.sandbox
    own.close()
    assert own._sandbox is None
    with pytest.raises(Exception):  # noqa: B017 - any error: the workers are gone
        made.run("def f(x):\n    return x\n", _square_task().tests)


class RecordingSandbox(Sandbox):
    """The real sandbox, recording the time limit of every run."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner, self.timeouts = inner, []

    def run(self, program, tests, *, timeout=None, memory_mb=None):
        self.timeouts.append(timeout)
        return self.inner.run(program, tests, timeout=timeout, memory_mb=memory_mb)


def test_a_tasks_calibrated_time_limit_applies_in_both_envs(box):
    """The larger of the env's timeout and the task's recorded limit (codegym.tasks.timing)."""
    timed = dataclasses.replace(_square_task(), metadata={"suite": "toy", "time_limit": 3.0})
    for task, expected in ((timed, 3.0), (_square_task(), 0.5)):
        rec = RecordingSandbox(box)
        venv = CodePRMVectorEnv(2, tasks=[task], prm=None, sandbox=rec, timeout=0.5)
        venv.reset(seed=0)
        venv.step(("    return x * x", SUBMIT))
        venv.step((SUBMIT, None))
        venv.close()
        env = CodePRMEnv(tasks=[task], prm=None, sandbox=rec, timeout=0.5)
        env.reset(seed=0)
        env.step(SUBMIT)
        env.close()
        assert rec.timeouts == [expected] * 3


def test_render_ansi_shows_each_slot():
    env = CodePRMVectorEnv(2, tasks=[_square_task()], prm=[PrefixScorer(), PrefixScorer()], render_mode="ansi")
    env.reset(seed=0)
    env.step(("    return x * x", "    # c"))
    text = env.render()
    assert len(text) == 2 and "return x * x" in text[0] and "# c" in text[1]
    env.close()
    assert codegym.ENV_ID == "CodePRM-v0"
