"""Incremental (KV-cached) PRM scoring equals full re-encoding; the env uses it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from codegym.envs.scoring import BatchedLineScorer, LineScorer
from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm import (
    BatchedPRMScorer,
    FullRescoringScorer,
    IncrementalScorer,
    ProcessRewardModel,
    load_line_scorer,
    score_programs,
)
from codegym.tasks.base import Task
from codegym.tokenization import task_context
from sandboxes import IOCase, TestSuite

PROMPT = 'def solve(xs):\n    """Apply these steps.\n\n    1. add 3 to every element\n    2. return the sum\n    """\n'
SOLUTION = ["    xs = [x + 3 for x in xs]", "    return sum(xs)"]
TEXTS = [PROMPT, "\n".join(SOLUTION) + "\n", "    # comment\n    xs = xs[::-1]\n"] * 20
ALPHABET = list("xs =+-*[]():#0123456789 abcdefghij_,.'\"\t")


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    torch.set_num_threads(1)
    base = build_tiny_lm_dir(
        tmp_path_factory.mktemp("base"), TEXTS, vocab_size=320,
        config=TinyLMConfig(n_layer=2, n_embd=64, n_head=4, n_positions=1024),
    )  # fmt: skip
    return ProcessRewardModel.from_base(base, seed=1).save_pretrained(tmp_path_factory.mktemp("prm") / "prm")


def _task() -> Task:
    cases = tuple(IOCase((xs,), sum(x + 3 for x in xs)) for xs in ([1, 2], [], [5], [0, 0, 7]))
    return Task("t/0", PROMPT, PROMPT, "solve", TestSuite("io", "solve", cases), "\n".join(SOLUTION), {"steps": 2})


def test_incremental_matches_full_on_100_random_prefixes(prm_dir) -> None:
    prm = ProcessRewardModel.from_pretrained(prm_dir)
    rng = np.random.default_rng(0)
    contexts, programs = [], []
    for _ in range(100):
        ctx = PROMPT[: int(rng.integers(1, len(PROMPT)))] + "\n"
        n_lines = int(rng.integers(1, 15))
        lines = ["".join(rng.choice(ALPHABET, int(rng.integers(0, 30)))) for _ in range(n_lines)]
        contexts.append(ctx)
        programs.append(lines)
    full = score_programs(prm, contexts, programs, batch_size=16)  # right-padded batches
    scorer = IncrementalScorer(prm)
    assert isinstance(scorer, LineScorer)
    worst = 0.0
    for ctx, lines, ref in zip(contexts, programs, full):
        assert scorer.reset_context(ctx) == 0.0
        got = []
        for j, line in enumerate(lines):
            if j % 4 == 3:  # neutral lines only extend the cache
                scorer.append(line)
                got.append(ref[j])
            else:
                got.append(scorer.score(line))
        worst = max(worst, float(np.abs(np.asarray(got) - ref).max()))
    assert worst < 1e-4
    # and the scores are not all equal (the comparison means something)
    assert np.std(np.concatenate(full)) > 1e-3


def test_full_rescoring_scorer_agrees(prm_dir) -> None:
    prm = ProcessRewardModel.from_pretrained(prm_dir)
    inc, full = IncrementalScorer(prm), FullRescoringScorer(prm)
    task = _task()
    inc.reset(task)
    full.reset(task)
    for line in SOLUTION + ["    pass", "    xs = xs"]:
        assert abs(inc.score(line) - full.score(line)) < 1e-4


def test_too_long_program_is_a_clear_error(prm_dir) -> None:
    scorer = IncrementalScorer(ProcessRewardModel.from_pretrained(prm_dir))
    scorer.reset_context("x\n")
    with pytest.raises(ValueError, match="positions"):
        for _ in range(2000):
            scorer.score("    xs = [x + 3 for x in xs] " * 3)
    with pytest.raises(ValueError, match="reset"):
        IncrementalScorer(ProcessRewardModel.from_pretrained(prm_dir)).score("x")


def test_env_with_prm_directory_gives_dense_rewards(prm_dir) -> None:
    import codegym  # noqa: F401  (registers CodePRM-v0)

    task = _task()
    env = gym.make("CodePRM-v0", tasks=[task], prm=str(prm_dir), reward_mode="score", disable_env_checker=True)
    try:
        obs, info = env.reset(seed=0)
        lines = [SOLUTION[0], "    # a comment", SOLUTION[1]]
        rewards, scores = [], []
        for line in lines:
            obs, r, term, trunc, info = env.step(line)
            rewards.append(r)
            scores.append(info["prm_score"])
        assert scores[1] is None and rewards[1] == 0.0  # comment: neutral, not scored
        ref = score_programs(load_line_scorer(prm_dir).prm, [task_context(task)], [lines])[0]
        assert abs(scores[0] - ref[0]) < 1e-4 and abs(scores[2] - ref[2]) < 1e-4
        obs, r, term, trunc, info = env.step(codegym.SUBMIT)
        assert term
    finally:
        env.close()


def test_batched_scorer_equals_incremental_with_resets_neutral_lines_and_rebuilds(prm_dir) -> None:
    """The vector env's scorer: one forward for every slot's line, slots restarting at
    different times (history masked out), neutral lines fed but not scored, and the cache
    rebuilt when holes dominate: every score equals a slot-alone IncrementalScorer."""
    prm = ProcessRewardModel.from_pretrained(prm_dir)
    n = 4
    batched = BatchedPRMScorer(prm, n)
    assert isinstance(batched, BatchedLineScorer)
    singles = [IncrementalScorer(prm) for _ in range(n)]
    rng = np.random.default_rng(3)
    started = [False] * n
    worst, compared, rebuilds = 0.0, 0, 0
    for _ in range(150):
        lines: list[str | None] = [None] * n
        scored = [False] * n
        for b in range(n):
            if not started[b] or rng.random() < 0.08 or singles[b]._length > 600:
                ctx = PROMPT[: int(rng.integers(1, len(PROMPT)))] + "\n"
                assert batched.reset_context(b, ctx) == singles[b].reset_context(ctx) == 0.0
                started[b] = True
            if rng.random() < 0.8:
                lines[b] = "".join(rng.choice(ALPHABET, int(rng.integers(0, 30))))
                scored[b] = bool(rng.random() < 0.75)
        width = batched.kv.width
        got = batched.score_lines(lines, scored)
        rebuilds += batched.kv.width < width
        for b, line in enumerate(lines):
            if line is None or not scored[b]:
                assert got[b] is None
                if line is not None:
                    singles[b].append(line)
                continue
            ref = singles[b].score(line)
            worst = max(worst, abs(got[b] - ref))
            compared += 1
    assert compared > 300 and rebuilds > 0
    assert worst < 1e-5


def test_batched_scorer_refuses_overflow_and_unstarted_slots_without_changing_state(prm_dir) -> None:
    prm = ProcessRewardModel.from_pretrained(prm_dir)
    batched = BatchedPRMScorer(prm, 2)
    with pytest.raises(ValueError, match="reset"):
        batched.score_lines(["    x = 1", None])
    batched.reset_context(0, "x\n")
    batched.reset_context(1, "x\n")
    first = batched.score_lines(["    xs = xs", "    xs = xs"])
    width = batched.kv.width
    with pytest.raises(ValueError, match="positions"):
        batched.score_lines(["    xs = [x + 3 for x in xs] " * 200, "    return 0"])
    assert batched.kv.width == width  # nothing was fed
    inc = IncrementalScorer(prm)
    inc.reset_context("x\n")
    assert abs(first[1] - inc.score("    xs = xs")) < 1e-5
    assert abs(batched.score_lines([None, "    return 0"])[1] - inc.score("    return 0")) < 1e-5
    with pytest.raises(ValueError, match="num_slots"):
        BatchedPRMScorer(prm, 0)


def test_vector_env_scores_with_a_prm_directory_like_the_single_env(prm_dir) -> None:
    import codegym

    task = _task()
    lines = [SOLUTION[0], "    # a comment", SOLUTION[1], codegym.SUBMIT]
    venv = gym.make_vec("CodePRM-v0", num_envs=2, tasks=[task], prm=str(prm_dir), reward_mode="score")
    env = gym.make("CodePRM-v0", tasks=[task], prm=str(prm_dir), reward_mode="score")
    venv.reset(seed=0)
    env.reset(seed=0)
    for line in lines:
        _, rewards, *_ = venv.step((line, line))
        _, reward, *_ = env.step(line)
        assert abs(rewards[0] - reward) < 1e-5 and abs(rewards[1] - reward) < 1e-5
    assert venv.unwrapped.prm_source == str(prm_dir)
    venv.close()
    env.close()


def test_vector_env_scores_incremental_scorers_of_one_prm_batched(prm_dir) -> None:
    """What PPO hands the env (load_line_scorers: one IncrementalScorer per env, one model)
    is scored batched, with the same rewards as the single env."""
    from codegym.envs import CodePRMVectorEnv
    from codegym.prm import load_line_scorers

    scorers = load_line_scorers(prm_dir, 2)
    venv = CodePRMVectorEnv(2, tasks=[_task()], prm=scorers, reward_mode="score")
    assert isinstance(venv.scorer, BatchedPRMScorer) and venv.scorer.prm is scorers[0].prm
    venv.reset(seed=0)
    _, rewards, *_ = venv.step((SOLUTION[0], SOLUTION[0]))
    assert abs(rewards[0] - scorers[0].reset(_task()) - scorers[0].score(SOLUTION[0])) < 1e-5
    venv.close()
    with pytest.raises(ValueError, match="one per env"):
        CodePRMVectorEnv(3, tasks=[_task()], prm=scorers)


@pytest.mark.parametrize("style", ["qwen2", "llama3", "starcoder"])
def test_incremental_scores_equal_full_scores_for_every_tokenizer_family(style, standin_prm_dir, line_tasks) -> None:
    """The rule's prefix property for tokenizers that merge newlines (Qwen2/Llama-3's
    ``"):\\n"``, ``".\\n\\n"``; StarCoder's ``"\\n    "``): a PRM scoring line by line with a
    KV cache (one program, or a batch of them) gives the scores of full re-encoding."""
    prm = ProcessRewardModel.from_pretrained(standin_prm_dir(style))
    rng = np.random.default_rng(0)
    contexts = [task_context(t) for t in line_tasks] * 3
    programs = [t.solution_lines for t in line_tasks] + [
        [line for line in t.solution_lines if rng.random() < 0.7] + ["", "    return 1.", ""] for t in line_tasks * 2
    ]  # fmt: skip
    full = score_programs(prm, contexts, programs, batch_size=4)
    assert np.std(np.concatenate(full)) > 1e-4  # the comparison means something
    single = IncrementalScorer(prm)
    batched = BatchedPRMScorer(prm, num_slots=len(programs))
    batched.reset(dict(enumerate(line_tasks * 3)))
    for ctx, lines, ref in zip(contexts, programs, full):
        single.reset_context(ctx)
        assert np.abs(np.array([single.score(line) for line in lines]) - ref).max() < 1e-4
    width = max(len(p) for p in programs)
    rows = [batched.score_lines([p[j] if j < len(p) else None for p in programs]) for j in range(width)]
    for b, ref in enumerate(full):
        assert np.abs(np.array([rows[j][b] for j in range(len(ref))]) - ref).max() < 1e-4
