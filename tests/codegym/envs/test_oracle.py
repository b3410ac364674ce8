"""The oracle potential: prefix correctness by completing with the reference (real sandbox)."""

from __future__ import annotations

import pytest

from codegym import SUBMIT
from codegym.envs import CodePRMEnv
from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.tasks import load_suite
from sandboxes import make_sandbox


@pytest.fixture(scope="module")
def box():
    with make_sandbox("local", workers=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def task():
    return load_suite("pipelines", min_steps=4, max_steps=4, seed=0).get("test", 3)


def test_reference_prefixes_are_completable_and_corruptions_are_not(box, task):
    scorer = ReferenceCompletionScorer(box)
    ref = task.solution_lines
    assert scorer.reset(task) == 1.0
    for line in ref[:-1]:
        assert scorer.score(line) == 1.0
    # a skipped step: the reference completion then applies the wrong steps
    scorer.reset(task)
    assert scorer.score(ref[1]) == -1.0
    # a comment does not count as a step and is never scored
    scorer.reset(task)
    scorer.append("    # first step")
    assert scorer.score(ref[0]) == 1.0
    # a constant answer is wrong
    scorer.reset(task)
    assert scorer.score("    return 0") == -1.0


def test_cache_is_shared_and_bounded(box, task):
    cache = VerdictCache(max_entries=3)
    a = ReferenceCompletionScorer(box, cache=cache)
    b = ReferenceCompletionScorer(box, cache=cache)
    a.reset(task)
    a.score(task.solution_lines[0])
    misses = cache.misses
    b.reset(task)
    b.score(task.solution_lines[0])
    assert cache.misses == misses and cache.hits >= 2
    for i in range(5):
        cache.put(("t", "s", (str(i),)), True)
    assert len(cache._data) == 3
    with pytest.raises(ValueError, match="max_entries"):
        VerdictCache(0)


def test_oracle_drives_closed_shaping_in_the_env(box, task):
    env = CodePRMEnv(tasks=[task], prm=ReferenceCompletionScorer(box), sandbox=box)
    env.reset(seed=0)
    ref = task.solution_lines
    rewards = [env.step(ref[0])[1], env.step("    return 0")[1]]
    _, final, terminated, _, info = env.step(SUBMIT)
    assert rewards == [0.0, -1.0]  # Φ 1 -> 1, then 1 -> 0 (probability scale)
    assert terminated and not info["passed"]
    assert final == pytest.approx(0.0)  # closing term −Φ(last) = 0, unit tests 0
    assert sum(rewards) + final == pytest.approx(-1.0)  # −Φ(empty)
    env.close()
