"""Per-task time limits calibrated from the reference's own time, recorded and applied.

A correct but slow reference (a quadratic loop) times out under a short fixed limit; once its
task is calibrated (limit = 4 x its own time, at least 1 s) the same program passes in the
environment, the figures survive a JSONL round trip, and ``codegym eval --agent reference``
names every timeout with the reference's own time beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegym.cli import main
from codegym.envs.code_prm import CodePRMEnv
from codegym.tasks.base import Task
from codegym.tasks.jsonl import JsonlSuite, write_jsonl
from codegym.tasks.timing import (
    calibrate_time_limits,
    calibrated_limit,
    reference_times,
    time_limit,
)
from sandboxes import IOCase, Sandbox, TestSuite, make_sandbox

SHORT = 0.1  # seconds: the fixed limit the slow reference does not meet (it needs ~0.5 s idle)
SLOW = ("def count_pairs(xs):\n    n = 0\n    for a in xs:\n        for b in xs:\n"
        "            if a < b:\n                n += 1\n    return n")


def _tasks() -> list[Task]:
    xs = list(range(6000))  # 36 M comparisons: about 0.5 s of pure Python on an idle core
    slow = Task("slow/0", "Count the ordered pairs.", "", "count_pairs",
                TestSuite(kind="io", entry_point="count_pairs",
                          cases=(IOCase((xs,), len(xs) * (len(xs) - 1) // 2),)), SLOW)
    fast = Task("fast/0", "Add one.", "", "inc",
                TestSuite(kind="io", entry_point="inc", cases=(IOCase((1,), 2),)),
                "def inc(x):\n    return x + 1")
    return [slow, fast]


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    sandbox = make_sandbox("local", workers=1)
    yield sandbox
    sandbox.close()


def test_the_limit_is_a_multiple_of_the_reference_time_with_a_floor() -> None:
    assert calibrated_limit(0.01) == 1.0 and calibrated_limit(2.0) == 8.0
    assert calibrated_limit(0.5, factor=3.0, floor=0.1) == 1.5
    with pytest.raises(ValueError, match="factor"):
        reference_times([], None, factor=0)  # type: ignore[arg-type]


def test_calibrated_limits_are_recorded_and_let_the_slow_reference_pass(
        box: Sandbox, tmp_path: Path) -> None:
    slow, fast = _tasks()
    env = CodePRMEnv(tasks=[slow], sandbox=box, prm=None, timeout=SHORT)
    try:
        env.reset(seed=0)
        for line in slow.solution_lines:
            env.step(line)
        _, _, _, _, info = env.step("\x04")
        assert info["exec"]["status"] == "timeout", info["exec"]  # the machine's speed decides
    finally:
        env.close()
    calibrated = calibrate_time_limits([slow, fast], box)
    ref = calibrated[0].metadata["reference_time"]
    assert ref > SHORT and calibrated[0].metadata["time_limit"] == calibrated_limit(ref)
    assert calibrated[1].metadata["time_limit"] == 1.0  # the floor
    assert time_limit(calibrated[0], SHORT) == calibrated[0].metadata["time_limit"]
    assert time_limit(slow, SHORT) == SHORT  # nothing recorded: the env's own
    path = tmp_path / "timed.jsonl"
    write_jsonl(calibrated, path)
    loaded = JsonlSuite(path).take()
    assert [t.metadata["time_limit"] for t in loaded] == [t.metadata["time_limit"]
                                                         for t in calibrated]
    env = CodePRMEnv(tasks=[loaded[0]], sandbox=box, prm=None, timeout=SHORT)
    try:
        env.reset(seed=0)
        for line in loaded[0].solution_lines:
            env.step(line)
        _, reward, _, _, info = env.step("\x04")
        assert info["exec"]["status"] == "passed" and reward >= 1.0, info["exec"]
    finally:
        env.close()


def test_a_reference_that_fails_cannot_be_calibrated(box: Sandbox) -> None:
    slow, _ = _tasks()
    broken = Task("broken/0", "", "", "count_pairs", slow.tests, "def count_pairs(xs):\n    return 0")
    with pytest.raises(ValueError, match="broken/0"):
        calibrate_time_limits([broken], box)


def test_eval_reports_each_timeout_with_the_references_own_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "suite.jsonl"
    write_jsonl(_tasks(), path)
    out = tmp_path / "ref.jsonl"
    assert main(["eval", "--suite", f"jsonl:{path}", "--agent", "reference", "--workers", "1",
                 "--timeout", str(SHORT), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["task_id"]: r["status"] for r in rows} == {"slow/0": "timeout", "fast/0": "passed"}
    assert all(r["time_limit"] == SHORT for r in rows)
    printed = capsys.readouterr().out
    assert "timeouts" in printed and "slow/0" in printed
    summary = json.loads((tmp_path / "ref.summary.json").read_text())
    (timeout,) = summary["timeouts"]
    assert timeout["task_id"] == "slow/0" and timeout["reference_status"] == "passed"
    assert timeout["reference_time"] > SHORT and timeout["time_limit"] == SHORT
    assert timeout["calibrated_limit"] == calibrated_limit(timeout["reference_time"])
