"""Line scorers for search: the PRM (against the incremental scorer) and the exact oracle
(real sandbox)."""

from __future__ import annotations

import pytest

from codegym.prm.model import ProcessRewardModel
from codegym.prm.scoring import IncrementalScorer
from codegym.search import OracleScorer, PRMScorer
from codegym.tasks import load_suite
from sandboxes import make_sandbox


@pytest.fixture(scope="module")
def box():
    with make_sandbox("local", workers=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def task():
    return load_suite("pipelines", min_steps=4, max_steps=4, seed=0).get("test", 3)


def test_prm_scores_every_code_line_like_the_incremental_scorer(tiny_prm_dir, task) -> None:
    prm = ProcessRewardModel.from_pretrained(tiny_prm_dir)
    program = [task.solution_lines[0], "    # a comment", *task.solution_lines[1:3]]
    got = PRMScorer(prm).score_programs([task, task], [program, []])
    assert got.scores[1] == [] and got.executions == [0, 0]
    ref = IncrementalScorer(prm)
    ref.reset(task)
    want = [ref.score(program[0]), None, None, None]
    ref.append(program[1])
    want[2:] = [ref.score(program[2]), ref.score(program[3])]
    assert got.scores[0][1] is None  # the comment is neutral
    assert got.scores[0] == [pytest.approx(w, abs=1e-4) if w is not None else None for w in want]


def test_prm_leaves_lines_past_its_positions_unscored(tiny_prm_dir, task) -> None:
    prm = ProcessRewardModel.from_pretrained(tiny_prm_dir)
    program = [task.solution_lines[0], "    xs = [" + ", ".join(["1"] * 600) + "]", task.solution_lines[1]]
    scores = PRMScorer(prm).score_programs([task], [program]).scores[0]
    assert scores[0] is not None and scores[1:] == [None, None]


def test_oracle_scores_prefixes_and_the_finished_programs_verdict(box, task) -> None:
    oracle = OracleScorer(box, workers=2)
    ref = task.solution_lines
    wrong = [ref[0], "    return 0"]
    partial = ref[:2]  # completable, but as a finished program it fails
    got = oracle.score_programs([task] * 3, [ref, wrong, partial])
    assert got.scores[0] == [1.0] * len(ref)
    assert got.scores[1] == [1.0, -1.0]
    assert got.scores[2] == [1.0, -1.0]  # last line: the verdict of the program as it is
    assert got.executions[0] == len(ref) and sum(got.executions) == oracle.executions
    again = oracle.score_programs([task], [ref])  # every answer is cached now
    assert again.scores[0] == got.scores[0] and again.executions == [0]
    last_only = OracleScorer(box, prefixes=False).score_programs([task], [wrong])
    assert last_only.scores[0] == [None, -1.0] and last_only.executions == [1]
    oracle.close()


def test_oracle_slots_score_new_lines_and_copy(box, task) -> None:
    oracle = OracleScorer(box)
    slots = oracle.open_slots([task, task])
    ref = task.solution_lines
    first = slots.score_lines([ref[0], "    return 0"])
    assert first.scores == [1.0, -1.0] and first.full == [False, False]
    slots.select([0, 0, 1])
    second = slots.score_lines([ref[1], "    # note", None])
    assert second.scores == [1.0, None, None]
    ends = slots.submit_scores([0, 2])
    assert ends.scores == [-1.0, -1.0]  # two steps of four, and 'return 0', both fail as programs
    with pytest.raises(ValueError, match="index must name slots"):
        slots.select([3])
    oracle.close()
