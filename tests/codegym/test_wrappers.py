"""CandidateLineWrapper: a discrete-action, numeric-observation CodePRM-v0 that Gymnasium's
and Stable-Baselines3's checkers accept, that runs in SB3 vector envs, and whose rewards are
the wrapped env's (dense PRM reward per line, unit-test reward at the end)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import codegym
from codegym.wrappers import (
    CandidateLineWrapper,
    LMProposer,
    PipelinesTableProposer,
    Proposal,
    make_discrete_env,
)

KW = dict(suite="pipelines", suite_kwargs={"min_steps": 2, "max_steps": 4}, max_lines=8,
          proposer_kwargs={"num_candidates": 4, "max_steps": 4})  # fmt: skip


def _oracle_action(env: CandidateLineWrapper) -> int:
    """The candidate that is the next reference line (or submit)."""
    core = env.unwrapped
    ref = core.task.solution_lines
    m = len(core.lines)
    line = ref[m] if m < len(ref) else None
    cands = env._proposal.lines
    return cands.index(line) if line in cands else env.k


def _inner(env: gym.Env) -> CandidateLineWrapper:
    """The CandidateLineWrapper under gym.make's own wrappers."""
    while not isinstance(env, CandidateLineWrapper):
        env = env.env
    return env


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory) -> Path:
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.prm import ProcessRewardModel
    from codegym.tasks import load_suite

    suite = load_suite("pipelines", min_steps=2, max_steps=4)
    texts = [t.prompt + t.solution + "\n" for t in suite.take(60, "train")]
    root = tmp_path_factory.mktemp("wrap")
    base = build_tiny_lm_dir(root / "lm", texts, vocab_size=400, config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2))
    torch.manual_seed(0)
    return ProcessRewardModel.from_base(base, seed=1).save_pretrained(root / "prm")


def test_gymnasium_and_sb3_check_env_pass() -> None:
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_discrete_env(**KW)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    # the only remark: Gymnasium notes that a wrapper is checked, not a raw env
    assert [str(w.message) for w in caught if "unwrapped" not in str(w.message)] == []
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space.shape == (1 + 9 + 4 * 8,) and env.observation_space.dtype == np.float32
    env.close()


def test_registered_id_and_oracle_and_random_policies() -> None:
    env = gym.make("CodePRMDiscrete-v0", **KW)
    rng = np.random.default_rng(0)
    outcomes = {"oracle": [], "random": []}
    for ep in range(20):
        for name in outcomes:
            obs, info = env.reset(seed=ep)
            assert env.observation_space.contains(obs) and len(info["candidates"]) == 4
            done = False
            while not done:
                a = _oracle_action(_inner(env)) if name == "oracle" else int(rng.integers(5))
                obs, reward, terminated, truncated, info = env.step(a)
                done = terminated or truncated
            outcomes[name].append(info["passed"])
    assert all(outcomes["oracle"])  # the right candidate is always offered
    assert np.mean(outcomes["random"]) < 0.3
    env.close()


def test_rewards_are_the_wrapped_envs(tiny_prm: Path) -> None:
    """The same lines through the wrapper and through a plain CodePRM-v0 with the same PRM
    give the same per-step rewards: dense PRM deltas, then + the unit-test reward."""
    env = make_discrete_env(prm=str(tiny_prm), **KW)
    plain = gym.make("CodePRM-v0", prm=str(tiny_prm), suite="pipelines",
                     suite_kwargs={"min_steps": 2, "max_steps": 4}, max_lines=8)  # fmt: skip
    rng = np.random.default_rng(1)
    saw_dense = saw_pass = False
    for ep in range(6):
        obs, info = env.reset(seed=ep)
        task = info["task"]
        lines, rewards, done = [], [], False
        while not done:
            a = _oracle_action(env) if ep % 2 == 0 else int(rng.integers(5))
            obs, r, terminated, truncated, info = env.step(a)
            lines.append(info["line"])
            rewards.append(r)
            done = terminated or truncated
        saw_pass |= info["passed"]
        plain.reset(options={"task": task})
        expected = [plain.step(line)[1] for line in lines]
        assert rewards == pytest.approx(expected, abs=1e-6)
        saw_dense |= any(abs(x) > 1e-6 for x in rewards[:-1])
    assert saw_dense and saw_pass
    env.close()
    plain.close()


def test_sb3_vec_envs_and_ppo() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    dummy = make_vec_env("CodePRMDiscrete-v0", n_envs=2, seed=0, env_kwargs=KW, vec_env_cls=DummyVecEnv)
    model = PPO("MlpPolicy", dummy, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    obs = dummy.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert obs.shape == (2, 42) and action.shape == (2,)
    dummy.close()

    sub = make_vec_env("codegym:CodePRMDiscrete-v0", n_envs=2, seed=0, env_kwargs=KW, vec_env_cls=SubprocVecEnv,
                       vec_env_kwargs={"start_method": "spawn"})  # "codegym:" imports codegym in the workers; fmt: skip
    try:
        obs = sub.reset()
        ends = 0
        for _ in range(30):
            obs, rewards, dones, infos = sub.step(np.array([4, 4]))  # submit: episodes end and reset
            ends += int(dones.sum())
            assert obs.shape == (2, 42) and np.isfinite(obs).all()
        assert ends == 60 and all("exec" in i for i in infos)
    finally:
        sub.close()


class _BadProposer:
    num_candidates, candidate_dim, context_dim, bounds = 2, 1, 0, (0.0, 1.0)

    def propose(self, task, lines, rng):
        return Proposal(["    return 0", "    a = 1\n    b = 2"], np.ones((2, 1)), np.zeros(0))


def test_bad_candidates_and_actions_are_clear() -> None:
    env = CandidateLineWrapper(codegym.envs.code_prm.CodePRMEnv(suite="pipelines", max_lines=4), _BadProposer())
    obs, info = env.reset(seed=0)
    assert info["candidates"] == ["    return 0", codegym.SUBMIT] and info["invalid_candidates"] == 1
    assert obs[1 + 1 + 1] == 1.0 and obs[-1] == 0.0  # validity flags of the two slots
    with pytest.raises(ValueError, match="action must be in"):
        env.step(3)
    obs, r, term, trunc, info = env.step(0)
    assert not term and info["line"] == "    return 0"
    with pytest.raises(ValueError, match="pipelines task"):
        PipelinesTableProposer(4).propose(
            codegym.tasks.load_suite("humaneval").get("test", 0), [], np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="num_candidates"):
        PipelinesTableProposer(1)
    env.close()


def test_lm_proposer(tiny_prm: Path) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    lm_dir = tiny_prm.parent / "lm"
    env = make_discrete_env(proposer=f"lm:{lm_dir}", suite="pipelines",
                            suite_kwargs={"min_steps": 2, "max_steps": 3}, max_lines=4,
                            proposer_kwargs={"num_candidates": 3, "max_line_tokens": 16})  # fmt: skip
    assert isinstance(env.proposer, LMProposer) and env.observation_space.shape == (1 + 32 + 3 * 6,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(env)
    # (Gymnasium's checker also compares step infos for equality; a step that submits carries
    # the execution's wall-clock duration, so it is run on the table proposer only.)
    obs, info = env.reset(seed=3)
    again, info2 = env.reset(seed=3)
    assert np.array_equal(obs, again) and info["candidates"] == info2["candidates"]
    assert env.observation_space.contains(obs) and len(info["candidates"]) == 3
    freq = obs[1 + 32 :].reshape(3, 6)[:, 1]
    assert 0 < freq.max() <= 1.0
    env.close()
