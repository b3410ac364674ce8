"""The labeling run: JSONL rows, resume after a crash (truncated tail), cache restore, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegym.labeling import (
    LabelConfig,
    LabelRun,
    LabelRunConfig,
    ReferenceCompleter,
    read_rows,
    summarize,
    summary_path,
)
from codegym.prm.data import read_stepwise_jsonl
from codegym.tasks.registry import SuiteConfig, load_suite
from sandboxes import make_sandbox

SUITE_KW = {"min_steps": 3, "max_steps": 8}
SUITE = SuiteConfig(min_lines=3, max_lines=8)


@pytest.fixture(scope="module")
def sandbox():
    sb = make_sandbox("local", workers=2)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def suite():
    return load_suite("pipelines", **SUITE_KW)


def config(responses: int, **kw) -> LabelRunConfig:
    label = LabelConfig(k=kw.pop("k", 4), chunk=kw.pop("chunk", 2), mode=kw.pop("mode", "binary"))
    split = kw.pop("split", None)
    suite = SuiteConfig.over(SUITE, {"split": split}) if split else SUITE
    return LabelRunConfig(suite=suite, responses=responses, label=label, **kw)


def run(out: Path, sandbox, suite, responses: int, rate: float = 0.2, **kw) -> dict:
    job = LabelRun(out, ReferenceCompleter(rate), sandbox, config(responses, **kw), suite=suite)
    return job.run()


def test_rows_follow_the_stepwise_format(tmp_path, sandbox, suite) -> None:
    out = tmp_path / "labels.jsonl"
    summary = run(out, sandbox, suite, 12)
    rows = read_rows(out)
    assert [r["response_index"] for r in rows] == list(range(12))
    for r in rows:
        assert len(r["labels"]) == len(r["completions"])
        assert set(r["labels"]) <= {-1, 0, 1}
        assert isinstance(r["prompt"], str) and r["task_id"].startswith("pipelines/train/")
        if r["passed"]:
            assert -1 not in r["labels"] and r["first_error"] is None
        elif r["first_error"] is not None:
            assert r["labels"][r["first_error"]] == -1
            assert -1 not in r["labels"][: r["first_error"]]
        assert r["prefix_checks"] <= r["bound_prefix_checks"]
        assert r["n_completions"] <= 4 * r["bound_prefix_checks"]
    assert not all(r["passed"] for r in rows) and any(r["passed"] for r in rows)
    # the PRM's data reader takes the file as it is
    examples = read_stepwise_jsonl(out)
    assert [e.labels for e in examples] == [r["labels"] for r in rows]
    assert [e.first_error for e in examples] == [r["first_error"] for r in rows]
    saved = json.loads(summary_path(out).read_text())
    assert saved == json.loads(json.dumps(summary))
    assert summary["responses"] == 12
    assert sum(summary["labels"].values()) == summary["lines"] == sum(len(r["labels"]) for r in rows)
    assert summary["revised"] == sum(r["revised"] for r in rows)
    assert summary["linear"]["prefix_checks_per_response"] >= summary["prefix_checks_per_response"] - 1e-9


def test_no_corruption_means_every_response_passes(tmp_path, sandbox, suite) -> None:
    summary = run(tmp_path / "clean.jsonl", sandbox, suite, 5, rate=0.0)
    assert summary["passed"] == 5 and summary["executions_per_response"] == 1.0


def test_resume_after_a_crash_gives_the_same_file(tmp_path, sandbox, suite) -> None:
    full = tmp_path / "full.jsonl"
    run(full, sandbox, suite, 10, samples_per_task=2)
    data = full.read_bytes()
    lines = data.split(b"\n")
    assert any(c["cached"] for r in read_rows(full) for c in r["checks"]), "no cache hit to restore"
    for keep in (0, 3, 7):
        crashed = tmp_path / f"crashed{keep}.jsonl"
        # `keep` finished rows, then half of the next one (a crash mid-write)
        crashed.write_bytes(b"".join(x + b"\n" for x in lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
        run(crashed, sandbox, suite, 10, samples_per_task=2)
        assert crashed.read_bytes() == data
        assert summary_path(crashed).read_text() == summary_path(full).read_text()
    # a finished file is left as it is; a larger --responses extends it
    run(full, sandbox, suite, 10, samples_per_task=2)
    assert full.read_bytes() == data
    short = tmp_path / "short.jsonl"
    run(short, sandbox, suite, 4, samples_per_task=2)
    run(short, sandbox, suite, 10, samples_per_task=2)
    assert short.read_bytes() == data


def test_resume_with_other_settings_is_refused(tmp_path, sandbox, suite) -> None:
    out = tmp_path / "labels.jsonl"
    run(out, sandbox, suite, 2)
    with pytest.raises(ValueError, match="k: file has 4, now 8"):
        run(out, sandbox, suite, 3, k=8)
    with pytest.raises(ValueError, match="completer"):
        run(out, sandbox, suite, 3, rate=0.5)


def test_corrupt_row_is_reported_with_its_line(tmp_path, sandbox, suite) -> None:
    out = tmp_path / "labels.jsonl"
    run(out, sandbox, suite, 3)
    lines = out.read_text().split("\n")
    lines[1] = lines[1][:20]
    out.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"labels.jsonl:2: corrupt label row"):
        run(out, sandbox, suite, 3)


def test_linear_mode_counts_match_the_computed_linear_cost(tmp_path, sandbox, suite) -> None:
    summary = run(tmp_path / "lin.jsonl", sandbox, suite, 10, mode="linear")
    assert summary["mode"] == "linear"
    assert summary["linear"]["executions_per_response"] == summary["executions_per_response"]
    assert summary["linear"]["prefix_checks_per_response"] == summary["prefix_checks_per_response"]


def test_summary_of_handmade_rows() -> None:
    def row(passed: bool, labels: list[int], checks: list[tuple[int, bool, int, int]], j: int) -> dict:
        return {
            "passed": passed, "revised": (not passed) and j > 0, "labels": labels,
            "completions": ["x"] * len(labels), "code_lines": sum(1 for x in labels if x),
            "correct_code_lines": j, "mode": "binary", "bound_prefix_checks": 4,
            "n_completions": sum(c[2] for c in checks), "n_executions": sum(c[3] for c in checks),
            "prefix_checks": len(checks), "linear_prefix_checks": 1 if passed else 1 + min(j + 1, 5),
            "checks": [{"code_lines": c[0], "num_lines": c[0], "ok": c[1], "samples": c[2],
                        "executions": c[3], "cached": False} for c in checks],
        }

    rows = [
        row(True, [1, 1, 0, 1], [(3, True, 0, 1)], 3),
        # 6 code lines, first error at code line 5: binary checked 3 (ok), 4 (ok), 5 (fail)
        row(False, [1, 1, 1, 1, -1, -1], [(6, False, 0, 1), (3, True, 2, 1), (4, True, 1, 1), (5, False, 4, 3)], 4),
    ]
    s = summarize(rows, k=4)
    assert s["responses"] == 2 and s["passed"] == 1 and s["revised"] == 1
    assert s["labels"] == {"+1": 7, "-1": 2, "0": 1}
    assert s["executions_per_response"] == (1 + 6) / 2
    # linear for row 2: response (1) + prefixes 1, 2 (unchecked: mean ok cost 1 exec, 1.5
    # samples) + 3, 4 (actual 1 + 1) + 5 (actual 3) = 1 + 2 + 2 + 3 = 8 executions
    assert s["linear"]["executions_per_response"] == (1 + 8) / 2
    assert s["linear"]["completions_per_response"] == (0 + 1.5 * 2 + 2 + 1 + 4) / 2
    assert s["linear"]["prefix_checks_per_response"] == (1 + 6) / 2
    # checking every prefix: the same for row 2 (its first error is at the last prefix)
    assert s["exhaustive"]["executions_per_response"] == (1 + 8) / 2
    assert s["exhaustive"]["prefix_checks_per_response"] == (1 + 6) / 2
    # an early error: 5 code lines, binary checked 2 (fail) and 1 (ok)
    early = row(False, [1, -1, -1, -1, -1], [(5, False, 0, 1), (2, False, 4, 2), (1, True, 1, 1)], 1)
    e = summarize([early], k=4)
    assert e["linear"]["prefix_checks_per_response"] == 3  # response, prefixes 1 and 2
    assert e["linear"]["executions_per_response"] == 1 + 1 + 2
    assert e["exhaustive"]["prefix_checks_per_response"] == 5
    assert e["exhaustive"]["executions_per_response"] == 1 + 1 + 2 + 2 + 2  # 3, 4 at mean fail cost
    assert e["executions_ratio_to_linear"] == 1.0


def test_responses_are_deterministic_per_index(sandbox, suite) -> None:
    a = LabelRun("unused.jsonl", ReferenceCompleter(0.3), sandbox, config(5), suite=suite)
    b = LabelRun("unused.jsonl", ReferenceCompleter(0.3), sandbox, config(5), suite=suite)
    rows = [b.label_one(i) for i in range(5)]
    assert a.label_one(3) == rows[3]  # regenerated alone, without responses 0-2 before it
    assert len({r["task_id"] for r in rows}) == 5
    assert len({tuple(r["completions"]) for r in rows}) == 5


def test_bad_settings_raise_value_error(tmp_path, sandbox, suite) -> None:
    with pytest.raises(ValueError, match="responses"):
        config(-1)
    with pytest.raises(ValueError, match="samples_per_task"):
        config(3, samples_per_task=0)
    with pytest.raises(ValueError, match="split"):
        LabelRun(tmp_path / "x.jsonl", ReferenceCompleter(), sandbox, config(3, split="nope"), suite=suite)


def test_first_task_offsets_the_answered_tasks_and_is_checked_on_resume(tmp_path, sandbox, suite) -> None:
    base = LabelRun("unused.jsonl", ReferenceCompleter(0.3), sandbox, config(4), suite=suite)
    shifted = LabelRun("unused.jsonl", ReferenceCompleter(0.3), sandbox, config(4, first_task=10), suite=suite)
    assert shifted.task_for(0).task_id == base.task_for(10).task_id == suite.get("train", 10).task_id
    out = tmp_path / "labels.jsonl"
    run(out, sandbox, suite, 2, first_task=5)
    assert [r["task_id"] for r in read_rows(out)] == [suite.get("train", i).task_id for i in (5, 6)]
    with pytest.raises(ValueError, match="first_task: file has 5, now 0"):
        run(out, sandbox, suite, 3)
    with pytest.raises(ValueError, match="first_task"):
        config(3, first_task=-1)


def test_files_written_before_first_task_existed_still_resume(tmp_path, sandbox, suite) -> None:
    out = tmp_path / "labels.jsonl"
    run(out, sandbox, suite, 2)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    for r in rows:
        del r["run"]["first_task"]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(out, sandbox, suite, 3)
    assert len(read_rows(out)) == 3
