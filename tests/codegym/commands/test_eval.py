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


@pytest.mark.parametrize(("style", "instruct"), [(s, i) for s in ("qwen2", "llama3", "starcoder") for i in (False, True)])
def test_eval_of_a_model_that_continues_the_reference_reproduces_it(style, instruct, reference_lm_dir, line_suite_path,
                                                                    line_tasks, tmp_path) -> None:  # fmt: skip
    """``codegym eval --agent hf`` on a checkpoint of each tokenizer family (base and
    instruct) whose model continues the reference text: every program is the reference,
    line for line (indentation, blank lines), and passes."""
    out = tmp_path / "e.jsonl"
    assert main(["eval", "--suite", f"jsonl:{line_suite_path}", "--agent", "hf", "--model",
                 str(reference_lm_dir(style, instruct)), "--workers", "1", "--out", str(out)]) == 0  # fmt: skip
    rows = {r["task_id"]: r for r in _rows(out)}
    assert [rows[t.task_id]["lines"] for t in line_tasks] == [t.solution_lines for t in line_tasks]
    assert all(r["passed"] for r in rows.values())


def test_eval_reads_an_instruct_model_through_its_chat_template_unless_told_not_to(standin_dir, line_suite_path,
                                                                                   line_tasks, tmp_path) -> None:  # fmt: skip
    """A model that writes the reference only after the chat template's rendering passes
    with the default and writes nothing with ``--agent-arg chat_template=false``."""
    from reference_lm import build_reference_lm

    model = build_reference_lm(tmp_path / "chat", standin_dir("qwen2", True), line_tasks, chat=(True,))
    for extra, passed in (([], len(line_tasks)), (["--agent-arg", "chat_template=false"], 0)):
        out = tmp_path / f"{passed}.jsonl"
        assert main(["eval", "--suite", f"jsonl:{line_suite_path}", "--agent", "hf", "--model", str(model),
                     "--workers", "1", "--out", str(out), *extra]) == 0  # fmt: skip
        rows = _rows(out)
        assert sum(r["passed"] for r in rows) == passed
        assert all(r["lines"] == [] for r in rows) or passed


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("flag", ["--device", "--prm-device"])
def test_a_cuda_device_without_cuda_is_refused_naming_the_cause(flag, tiny_policy_dir, tmp_path, capsys):
    out = tmp_path / "e.jsonl"
    code = main(["eval", "--agent", "hf", "--model", str(tiny_policy_dir), "--episodes", "1", flag, "cuda",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "CUDA is not available" in err and "no CUDA support" in err and f"{flag} cpu" in err
    assert "corrupt" not in err and not out.exists()  # refused before anything is loaded or written


def test_dtype_and_prm_device_reach_the_policy_and_the_envs_prm(tiny_policy_dir, tiny_prm_dir, tmp_path, capsys):
    out = tmp_path / "e.jsonl"
    argv = ["eval", "--suite", "pipelines", "--max-task-lines", "2", "--agent", "hf", "--model", str(tiny_policy_dir),
            "--prm", str(tiny_prm_dir), "--prm-device", "cpu", "--episodes", "2", "--workers", "1", "--out", str(out),
            "--max-lines", "3", "--agent-arg", "max_line_tokens=16"]  # fmt: skip
    assert main([*argv, "--dtype", "bf16"]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(s is not None for r in rows for s in r["prm_scores"])
    summary = json.loads((tmp_path / "e.summary.json").read_text())
    assert summary["settings"]["dtype"] == "bf16" and "--dtype bf16" in summary["provenance"]["command"]
    capsys.readouterr()
    assert main([*argv, "--dtype", "fp32"]) == 2  # a resume in another precision is refused
    assert "dtype" in capsys.readouterr().err
