"""Stepwise JSONL reading/validation, task-disjoint split, metrics."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest

from codegym.prm.data import (
    StepwiseExample,
    read_stepwise_jsonl,
    split_by_task,
    write_stepwise_jsonl,
)
from codegym.prm.train import predicted_first_error, roc_auc


def _row(**kw):
    row = {"prompt": "def f():\n", "completions": ["    x = 1", "    return x"], "labels": [1, -1],
           "task_id": "t/1", "first_error": 1}  # fmt: skip
    row.update(kw)
    return row


def test_roundtrip_and_trl_booleans(tmp_path) -> None:
    p = tmp_path / "l.jsonl"
    rows = [_row(), _row(labels=[True, False], first_error=None), _row(labels=[0, 1], first_error=None)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    ex = read_stepwise_jsonl(p)
    assert [e.labels for e in ex] == [[1, -1], [1, -1], [0, 1]]
    assert [e.first_error for e in ex] == [1, 1, None]  # derived when null
    write_stepwise_jsonl(tmp_path / "m.jsonl", ex)
    assert read_stepwise_jsonl(tmp_path / "m.jsonl") == ex


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (_row(labels=[1]), "one label per line"),
        (_row(labels=[1, 2]), "labels"),
        ({"prompt": "x"}, "missing field 'completions'"),
        (_row(completions=["a\nb", "c"]), "newline"),
        (_row(first_error=7), "first_error"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, match) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(_row()) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=match) as e:
        read_stepwise_jsonl(p)
    assert f"{p}:2" in str(e.value)


def test_corrupt_json_and_missing_file(tmp_path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: invalid JSON"):
        read_stepwise_jsonl(p)
    with pytest.raises(ValueError, match="does not exist"):
        read_stepwise_jsonl(tmp_path / "nope.jsonl")


def test_split_is_disjoint_by_task() -> None:
    ex = [StepwiseExample("p", ["x"], [1], f"t/{i % 50}", None) for i in range(400)]
    train, val = split_by_task(ex, 0.2, seed=0)
    assert {e.task_id for e in train}.isdisjoint({e.task_id for e in val})
    assert 0.05 < len(val) / len(ex) < 0.4


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # ties on purpose
    pos = rng.random(60) < 0.4
    pairs = [(a, b) for a, b in product(scores[pos], scores[~pos])]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert abs(roc_auc(scores, pos) - brute) < 1e-12
    assert roc_auc(np.array([1.0, 2.0]), np.array([False, True])) == 1.0
    assert np.isnan(roc_auc(np.array([1.0]), np.array([True])))


def test_predicted_first_error_skips_neutral_lines() -> None:
    assert predicted_first_error([0.9, -0.5, -0.9], [1, 0, -1]) == 2
    assert predicted_first_error([0.9, 0.8], [1, 1]) is None
