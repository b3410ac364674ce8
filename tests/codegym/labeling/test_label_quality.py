"""Label quality against the exact prefix oracle (real sandbox, real ``pipelines`` tasks).

Responses are reference solutions with one line replaced by another task step, so the truth
is known by construction: every prefix before the replaced line is correct, and the oracle
(:class:`codegym.envs.oracle.ReferenceCompletionScorer`) says which later prefixes are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegym.envs.oracle import ReferenceCompletionScorer
from codegym.labeling import LabelConfig, Labeler, ReferenceCompleter
from codegym.labeling.quality import (
    LabelQuality,
    first_error,
    judge_response,
    judge_rows,
    label_responses,
    true_labels,
)
from codegym.tasks import SuiteConfig, load_suite
from sandboxes import make_sandbox


@pytest.fixture(scope="module")
def sandbox():
    sb = make_sandbox("local", workers=2)
    yield sb
    sb.close()


def broken(task, at: int) -> list[str]:
    """The reference with line ``at`` replaced by ``xs = xs[::-1] + [9]`` (a wrong step)."""
    lines = list(task.solution_lines)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at] = indent + "xs = xs[::-1] + [9]"
    return lines


def test_judge_response_counts_by_hand() -> None:
    q = judge_response([1, 1, 0, -1, -1], [1, 1, 0, 1, -1], executions=7)
    assert (q.true_pos, q.false_pos, q.false_neg, q.true_neg) == (2, 0, 1, 1)
    assert q.precision == 1.0 and q.recall == pytest.approx(2 / 3) and q.accuracy == 0.75
    assert q.first_error_agree == 0 and q.executions == 7.0
    both = q + judge_response([1, -1], [1, -1], executions=3)
    assert both.responses == 2 and both.first_error_agreement == 0.5 and both.executions_per_response == 5.0
    assert first_error([0, 1, -1, 1]) == 2 and first_error([1, 0]) is None
    with pytest.raises(ValueError, match="one entry per line"):
        judge_response([1], [1, -1])


def test_true_labels_follow_the_reference_completion(sandbox) -> None:
    suite = load_suite("pipelines", min_steps=5, max_steps=6, seed=0)
    oracle = ReferenceCompletionScorer(sandbox)
    for task in suite.take(6, "validation"):
        at = 2
        truth = true_labels(task, broken(task, at), False, oracle)
        assert truth[:at] == [1] * at  # the reference's own prefix is always completable
        assert truth[at] == -1  # the replaced step changes the result (tasks have no dead lines)
        assert true_labels(task, task.solution_lines, True, oracle) == [1] * task.horizon


def test_exact_completer_labels_are_exact_and_a_weak_one_misses_correct_lines(sandbox) -> None:
    suite = load_suite("pipelines", min_steps=6, max_steps=8, seed=0)
    tasks = suite.take(12, "validation")
    responses = [(t, broken(t, t.horizon - 2)) for t in tasks]  # errors late: long correct prefixes
    by_id = {t.task_id: t for t in tasks}
    oracle = ReferenceCompletionScorer(sandbox)
    quality = {}
    for name, completer, k in (("exact", ReferenceCompleter(0.0), 1), ("weak", ReferenceCompleter(0.5), 2)):
        rows = label_responses(responses, Labeler(completer, sandbox, LabelConfig(k=k, mode="binary")), seed=3)
        quality[name] = judge_rows(rows, lambda r: by_id[r["task_id"]], oracle)["all"]
    exact, weak = quality["exact"], quality["weak"]
    assert exact.precision == 1.0 and exact.recall == 1.0 and exact.first_error_agreement == 1.0
    assert weak.recall < 0.8, weak.summary()  # correct prefixes the weak completer never finished
    assert weak.precision == 1.0  # a completion that passes proves its prefix correct
    assert isinstance(exact + weak, LabelQuality)


def test_label_cli_judge_adds_quality_to_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    cmd = [sys.executable, "-m", "codegym.cli", "label", "--suite", "pipelines", "--min-task-lines", "3",
           "--max-task-lines", "5", "--completer", "reference", "--corrupt-rate", "0.4", "--responses", "8",
           "--k", "2", "--judge", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    quality = json.loads(out.with_name("labels.summary.json").read_text())["quality"]
    assert quality["all"]["responses"] == 8
    assert sum(q["responses"] for k, q in quality.items() if k != "all") == 8
    assert "labels vs the exact prefix oracle" in done.stdout
    assert 0.0 <= quality["all"]["recall"] <= 1.0 and np.isfinite(quality["all"]["executions_per_response"])


def test_a_stronger_completer_labels_a_weak_policys_responses(sandbox, tmp_path: Path) -> None:
    """``LabelRun(responder=...)``: the weak policy writes the responses (the same ones as when
    it also completes them); the exact completer then labels them as the oracle does."""
    from codegym.labeling import LabelRun, LabelRunConfig

    cfg = LabelRunConfig(suite=SuiteConfig(min_lines=5, max_lines=7), responses=16, seed=5,
                         label=LabelConfig(k=2), completer_id="test")  # fmt: skip
    weak = ReferenceCompleter(0.4)
    alone = LabelRun(tmp_path / "alone.jsonl", weak, sandbox, cfg)
    alone.run()
    helped = LabelRun(tmp_path / "helped.jsonl", ReferenceCompleter(0.0), sandbox, cfg, responder=weak)
    helped.run()
    assert [r["completions"] for r in helped.rows] == [r["completions"] for r in alone.rows]
    oracle = ReferenceCompletionScorer(sandbox)
    quality = {name: judge_rows(run.rows, lambda r, run=run: run.task_for(r["response_index"]), oracle)["all"]
               for name, run in (("alone", alone), ("helped", helped))}  # fmt: skip
    assert quality["helped"].recall > quality["alone"].recall, {k: v.summary() for k, v in quality.items()}
    assert quality["helped"].recall >= 0.95
