"""``codegym eval`` end to end: real agents, real sandbox, JSONL and summary outputs."""

from __future__ import annotations

import json

import pytest

from codegym.cli import main
from codegym.evaluation import pass_at_k, summarize


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_reference_passes_all_164_humaneval(tmp_path, capsys):
    out = tmp_path / "ref.jsonl"
    assert main(["eval", "--suite", "humaneval", "--agent", "reference", "--workers", "2",
                 "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 164 and len({r["task_id"] for r in rows}) == 164
    failed = [(r["task_id"], r["status"], r["error_type"]) for r in rows if not r["passed"]]
    assert failed == []
    summary = json.loads((tmp_path / "ref.summary.json").read_text())
    assert summary["table"][0]["passed"] == 164 and summary["table"][0]["pass@1"] == 1.0
    assert "164" in capsys.readouterr().out


def test_random_passes_nothing_on_humaneval(tmp_path):
    out = tmp_path / "random.jsonl"
    assert main(["eval", "--suite", "humaneval", "--agent", "random", "--workers", "2",
                 "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 164 and sum(r["passed"] for r in rows) == 0


def test_pipelines_eval_reports_horizon_buckets_and_pass_at_k(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert main(["eval", "--suite", "pipelines", "--agent", "reference", "--agent-arg",
                 "corrupt=0.3", "--episodes", "30", "--samples", "2", "--max-steps", "9",
                 "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 60
    table = json.loads((tmp_path / "p.summary.json").read_text())["table"]
    groups = {t["group"] for t in table}
    assert "all" in groups and groups & {"1-3", "4-6", "7-9"}
    overall = table[0]
    assert 0 < overall["pass@1"] < 1 and overall["k"] == 2
    assert overall["pass@k"] >= overall["pass@1"]
    assert "pass@1" in capsys.readouterr().out


def test_bad_input_gives_clear_errors(capsys):
    assert main(["eval", "--suite", "nosuch", "--agent", "reference"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert main(["eval", "--suite", "pipelines", "--agent", "nope", "--episodes", "1"]) == 2
    assert "unknown agent" in capsys.readouterr().err
    assert main(["eval", "--suite", "humaneval", "--max-steps", "3", "--episodes", "1"]) == 2
    assert "suite 'humaneval' has no horizon knob" in capsys.readouterr().err
    assert main(["eval", "--suite", "humaneval", "--suite-seed", "3", "--episodes", "1"]) == 2
    assert "suite 'humaneval' is fixed and has no seed" in capsys.readouterr().err


def test_pass_at_k_and_summary_math():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    rows = [{"task_id": "a", "passed": p, "steps": 2, "return": float(p), "num_lines": 3}
            for p in (True, False)]
    table = summarize(rows, by_horizon=True)
    assert table[0]["group"] == "all" and table[0]["pass@1"] == 0.5 and table[0]["pass@k"] == 1.0
    assert table[1]["group"] == "1-3"


def test_show_prints_trajectories(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert main(["eval", "--suite", "pipelines", "--agent", "reference", "--agent-arg", "corrupt=1.0",
                 "--episodes", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(out), "--failed", "--index", "0"]) == 0
    shown = capsys.readouterr().out
    first = json.loads(out.read_text().splitlines()[0])
    assert first["task_id"] in shown and "FAIL" in shown and first["lines"][0].strip() in shown
    assert main(["show", str(out), "--index", "9"]) == 2
    assert main(["show", str(tmp_path / "missing.jsonl")]) == 2
