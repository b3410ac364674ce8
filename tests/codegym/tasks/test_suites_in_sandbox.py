"""Suites end to end through the ``local`` sandbox: references pass, one-line changes fail,
and JSONL values (tuples, ``\\r\\n`` prefixes with tabs and helpers) survive the trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegym.tasks import load_suite
from codegym.tasks.jsonl import JsonlSuite
from sandboxes import Sandbox, SandboxUnavailable, Status, make_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    try:
        sb = make_sandbox("local")
    except SandboxUnavailable as exc:  # pragma: no cover - depends on the host
        pytest.skip(f"local sandbox unavailable: {exc}")
    with sb:
        yield sb


def test_pipelines_references_pass_and_one_line_changes_fail(sandbox: Sandbox) -> None:
    suite = load_suite("pipelines", seed=0)
    tasks = [suite.get(split, i) for split in suite.splits for i in range(4)]
    for task in tasks:
        ref = sandbox.run(task.program(task.solution_lines), task.tests, timeout=10)
        assert ref.status is Status.PASSED and ref.passed == ref.total == len(task.tests.cases), (
            task.task_id, ref,
        )
        lines = task.solution_lines
        for mutant in (["    return 0"], ["    return []"], lines[1:] or ["    return 1"],
                       lines[:-1] + ["    return xs"]):
            if mutant == lines:
                continue
            res = sandbox.run(task.program(mutant), task.tests, timeout=10)
            assert res.status is not Status.PASSED, (task.task_id, mutant)


def test_jsonl_tuples_and_crlf_through_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    prefix = "def _twice(v):\r\n\treturn 2 * v\r\n\r\ndef pair(xs):\r\n\t\"\"\"Min, doubled max.\"\"\"\r\n"
    row = {
        "task_id": "j/0",
        "prompt": prefix,
        "code_prefix": prefix,
        "entry_point": "pair",
        "solution": "\treturn (min(xs), _twice(max(xs)))\r\n",
        "tests": {"kind": "io", "cases": [
            {"args": [[3, 1, 2]], "expected": {"__tuple__": [1, 6]}},
            {"args": [{"__tuple__": [5, -1]}], "expected": {"__tuple__": [-1, 10]}},
        ]},
    }
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(row) + "\r\n", encoding="utf-8", newline="")
    task = JsonlSuite(path).get("test", 0)
    ok = sandbox.run(task.program(task.solution_lines), task.tests, timeout=10)
    assert ok.status is Status.PASSED and ok.passed == 2, ok
    as_list = sandbox.run(task.program(["\treturn [min(xs), _twice(max(xs))]"]), task.tests,
                          timeout=10)
    assert as_list.status is not Status.PASSED  # a list is not the expected tuple
