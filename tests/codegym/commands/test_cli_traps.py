"""The CLI as a user meets it: each trap and rough error of the "new user's first hour"
issue, closed. Subprocesses of the ``codegym`` script where the process itself matters (an
import from the working directory, Ctrl-C, what the terminal shows, no traceback, an empty
home); ``codegym.cli.main`` in this process otherwise (same exit codes and messages, without
paying a Python start-up per call).

Before the fix: an ``Agent`` subclass without a constructor was rejected (``seed``),
misspelled ``--agent-arg`` keys were accepted silently, corrupt checkpoints and a missing
Docker engine gave tracebacks, Ctrl-C said nothing and a re-run overwrote ``--out``, an
emoji in a prompt aborted the evaluation, JSON outputs held ``NaN``, transformers' tqdm bars
interleaved with rich's, ``codegym show`` crashed on label files, ``codegym train`` with
``--iterations`` <= the critic warm-up saved the starting policy as a trained run, and
re-running ``train``/``train-prm`` with other settings silently resumed the old run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegym import defaults
from codegym.cli import main
from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm.data import StepwiseExample, write_stepwise_jsonl
from codegym.tasks import load_suite
from codegym.tokenization import task_context

CODEGYM = str(Path(sys.executable).parent / "codegym")


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    full_env.pop("CODEGYM_SMOKE", None)
    return subprocess.run([CODEGYM, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """In-process runs (``--threads``, ``torch_threads``) must not change later tests' threads."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run(capsys, monkeypatch):
    """``codegym ARGS`` in this process: a CompletedProcess with the exit code and output."""

    def call(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        monkeypatch.delenv("CODEGYM_SMOKE", raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, out, err)

    return call


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stderr
    for needle in needles:
        assert needle in " ".join(proc.stderr.split()), (needle, proc.stderr)


def strict_json(text: str) -> object:
    def bad(const: str) -> None:
        raise AssertionError(f"non-JSON constant {const} in output")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    suite = load_suite("pipelines", max_steps=3)
    texts = [task_context(t) + "".join(x + "\n" for x in t.solution_lines) for t in suite.take(30, "train")]
    return build_tiny_lm_dir(tmp_path_factory.mktemp("lm"), texts, vocab_size=320,
                             config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=512))


@pytest.fixture(scope="module")
def label_file(tmp_path_factory) -> Path:
    suite = load_suite("pipelines", max_steps=3)
    rows = []
    for t in suite.take(12, "train"):
        lines = t.solution_lines
        bad = len(lines) // 2
        labels = [1] * bad + [-1] * (len(lines) - bad)
        rows.append(StepwiseExample(task_context(t), lines[:bad] + ["    return 0"] * (len(lines) - bad),
                                    labels, t.task_id, bad if bad < len(lines) else None))
    path = tmp_path_factory.mktemp("labels") / "labels.jsonl"
    write_stepwise_jsonl(path, rows)
    return path


# ------------------------------------------------------------------ agents
def test_agent_subclass_without_constructor_works_by_module_path(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "agent.py").write_text(
        "from agents import Agent\nimport codegym\n\n"
        "class ReturnZero(Agent):\n"
        "    def reset(self, obs, info):\n        self.done = False\n"
        "    def act(self, obs):\n"
        "        if self.done:\n            return codegym.SUBMIT\n"
        "        self.done = True\n        return '    return 0'\n"
    )
    proc = cli("eval", "--suite", "humaneval", "--agent", "mypkg.agent:ReturnZero", "--episodes", "5",
               "--out", "runs/rz.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (tmp_path / "runs" / "rz.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["lines"] == ["    return 0"] for r in rows)


def test_unknown_agent_arg_is_refused_with_the_accepted_names(run):
    proc = run("eval", "--suite", "pipelines", "--agent", "hf", "--model", "default", "--episodes", "1",
               "--agent-arg", "temprature=0.5")
    one_line_error(proc, "temprature", "accepts:", "temperature")
    proc = run("eval", "--suite", "pipelines", "--agent", "reference", "--model", "default", "--episodes", "1")
    one_line_error(proc, "does not take --model")


# ------------------------------------------------------------ broken inputs
@pytest.mark.parametrize("damage", ["truncated-weights", "bad-config"])
def test_corrupt_checkpoint_is_a_one_line_error_naming_the_file(tmp_path, damage, run):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(defaults.policy_dir(), model)
    if damage == "truncated-weights":
        data = (model / "model.safetensors").read_bytes()
        (model / "model.safetensors").write_bytes(data[: len(data) // 3])
        culprit = "model.safetensors"
    else:
        (model / "config.json").write_text('{"model_type": "gpt2", "n_layer": ')
        culprit = "config.json"
    call = cli if damage == "truncated-weights" else run  # one in a real process: no traceback
    proc = call("eval", "--suite", "pipelines", "--agent", "hf", "--model", str(model), "--episodes", "1")
    one_line_error(proc, culprit, "corrupt")
    prm = tmp_path / "prm"
    shutil.copytree(defaults.prm_dir(), prm)
    (prm / "model.safetensors").write_bytes(b"\x00" * 64)
    proc = run("eval", "--suite", "pipelines", "--agent", "reference", "--episodes", "1", "--prm", str(prm))
    one_line_error(proc, "model.safetensors")


def test_missing_docker_engine_is_a_one_line_error():
    proc = cli("eval", "--suite", "pipelines", "--episodes", "1", "--sandbox", "docker", "--prm", "none",
               env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    one_line_error(proc, "no Docker engine answers")


def test_emoji_prompt_does_not_abort_the_evaluation(tmp_path, run):
    task = {
        "task_id": "emoji/1", "prompt": "Return the number of 🚀 in s (naïve count, 数据).\n",
        "entry_point": "count", "solution": "def count(s):\n    return s.count('🚀')",
        "tests": {"kind": "io", "cases": [{"args": ["🚀a🚀"], "expected": 2}, {"args": [""], "expected": 0},
                                          {"args": ["x🚀"], "expected": 1}]},
    }
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(task, ensure_ascii=False) + "\n", encoding="utf-8")
    proc = run("eval", "--suite", f"jsonl:{path}", "--agent", "reference", "--out", str(tmp_path / "e.jsonl"))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert row["passed"] and "🚀" in row["lines"][-1]


# -------------------------------------------------------- Ctrl-C and resume
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_what_was_saved_and_a_rerun_resumes(tmp_path):
    # Enough episodes that the run is still going when the signal lands on an idle machine
    # (12 greedy episodes could finish within one 0.2 s poll).
    episodes = 120
    out = tmp_path / "e.jsonl"
    args = ["eval", "--suite", "pipelines", "--agent", "hf", "--model", "default", "--agent-arg", "greedy=true",
            "--episodes", str(episodes), "--batch-size", "2", "--out", str(out), "--prm", "none"]
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("CODEGYM_SMOKE", None)
    # Like a terminal: SIGINT at its default disposition in the child (a shell starts
    # background jobs, e.g. a CI script run with `&`, with SIGINT ignored, and so would the child).
    proc = subprocess.Popen([CODEGYM, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "saved in" in err and "again" in err, err
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    assert 2 <= len(kept) < episodes
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} episodes done" in " ".join(again.stdout.split())
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == episodes and len({r["task_id"] for r in rows}) == episodes
    assert rows[: len(kept)] == kept  # finished work kept as it was
    summary = strict_json((tmp_path / "e.summary.json").read_text())
    assert summary["complete"] and summary["table"][0]["episodes"] == episodes


def test_eval_out_refuses_other_settings_and_overwrite_starts_anew(tmp_path, run):
    out = str(tmp_path / "e.jsonl")
    base = ["eval", "--suite", "pipelines", "--agent", "reference", "--prm", "none", "--episodes", "4", "--out", out]
    assert run(*base).returncode == 0
    proc = run(*base[:-4], "--episodes", "6", "--agent-arg", "corrupt=0.5", "--out", out)
    one_line_error(proc, "other settings", "episodes: was 4, now 6", "agent_args", "--overwrite")
    proc = run(*base[:-4], "--episodes", "6", "--agent-arg", "corrupt=0.5", "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert len(Path(out).read_text().splitlines()) == 6


def test_eval_summary_records_provenance_and_pass_at_k(tmp_path, run):
    out = tmp_path / "e.jsonl"
    proc = run("eval", "--suite", "pipelines", "--agent", "hf", "--model", "default", "--episodes", "3",
               "--samples", "5", "--agent-arg", "temperature=1.0", "--seed", "7", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = strict_json((tmp_path / "e.summary.json").read_text())
    s, p = summary["settings"], summary["provenance"]
    assert s["model"]["path"] == str(defaults.policy_dir()) and len(s["model"]["sha256"]) == 16
    assert s["prm"]["path"] == str(defaults.prm_dir())
    assert s["seed"] == 7 and s["agent_args"] == {"temperature": 1.0}
    assert s["suite"] == {"name": "pipelines", "split": "test", "min_lines": None, "max_lines": None, "seed": None}
    assert p["codegym"] and p["started"] and p["finished"]
    overall = summary["table"][0]
    assert {"pass@1", "pass@5"} <= set(overall) and "pass@10" not in overall
    assert overall["pass@5"] >= overall["pass@1"]
    assert "pass@5" in proc.stdout


# --------------------------------------------------------------- outputs
def test_no_transformers_tqdm_bars_in_cli_output(tiny_lm):
    proc = cli("eval", "--suite", "pipelines", "--agent", "hf", "--model", str(tiny_lm), "--episodes", "2",
               "--agent-arg", "max_line_tokens=8", "--max-lines", "3")
    assert proc.returncode == 0, proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert "Loading weights" not in text and "it/s]" not in text, text[-2000:]


def test_empty_buckets_and_splits_give_null_not_nan(tmp_path, tiny_lm, label_file, run):
    out = tmp_path / "sft"
    proc = run("sft", "--out", str(out), "--steps", "2", "--train-tasks", "8", "--eval-tasks", "2",
               "--buckets", "1-3,20-30", "--max-steps", "3", "--n-layer", "1", "--n-embd", "32",
               "--vocab-size", "300", "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    evaluation = strict_json((out / "eval.json").read_text())
    assert evaluation["buckets"]["20-30"] == {"pass@1": None, "n": 0}
    prm = tmp_path / "prm"
    proc = run("train-prm", "--data", str(label_file), "--base", str(tiny_lm), "--out", str(prm),
               "--steps", "2", "--val-fraction", "0", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "n/a" in proc.stdout and "nan" not in proc.stdout.lower()
    strict_json((prm / "final_metrics.json").read_text())
    for line in (prm / "metrics.jsonl").read_text().splitlines():
        strict_json(line)


def test_show_reads_label_files(tmp_path, label_file, run):
    proc = run("show", str(label_file), "--index", "0")
    assert proc.returncode == 0, proc.stderr
    assert "first error at line" in proc.stdout and "return 0" in proc.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n')
    one_line_error(run("show", str(bad)), "bad.jsonl:1", "neither a trajectory")


# -------------------------------------------------------- training runs
def test_train_refuses_iterations_within_the_critic_warm_up(tmp_path, run):
    proc = run("train", "--policy", "default", "--iterations", "3", "--out", str(tmp_path / "run"))
    one_line_error(proc, "critic_warmup_iterations=5 >= iterations=3", "never be updated")
    assert not (tmp_path / "run" / "policy").exists()


def test_train_prm_rerun_with_other_settings_or_data_is_refused(tmp_path, tiny_lm, label_file, run):
    out = str(tmp_path / "prm")
    base = ["train-prm", "--data", str(label_file), "--base", str(tiny_lm), "--out", out, "--no-progress"]
    assert run(*base, "--steps", "2").returncode == 0
    one_line_error(run(*base, "--steps", "2", "--lr", "0.01", "--batch-size", "4"), "other settings",
                   "lr: was 0.001, now 0.01", "batch_size: was 16, now 4")
    other = tmp_path / "labels2.jsonl"
    other.write_text(label_file.read_text().splitlines()[0] + "\n" + label_file.read_text())
    proc = run("train-prm", "--data", str(other), "--base", str(tiny_lm), "--out", out, "--steps", "2", "--no-progress")
    one_line_error(proc, "data")
    proc = run(*base, "--steps", "3", "--lr", "0.01", "--overwrite")  # a longer run alone would resume
    assert proc.returncode == 0, proc.stderr
    steps = [json.loads(x)["step"] for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3]  # a fresh run, not the old metrics plus new ones
    assert math.isclose(json.loads((Path(out) / "train_config.json").read_text())["lr"], 0.01)


@pytest.mark.slow
def test_train_rerun_with_other_settings_is_refused_and_overwrite_starts_anew(tmp_path, run):
    out = str(tmp_path / "run")
    base = ["train", "--policy", "default", "--iterations", "2", "--out", out, "--no-progress", "--max-task-lines", "2"]
    for kv in ("num_prompts=2", "samples_per_prompt=2", "max_new_tokens=24", "max_lines=4",
               "critic_warmup_iterations=1", "num_minibatches=1", "sandbox_workers=1", "torch_threads=1"):
        base += ["--set", kv]
    assert run(*base).returncode == 0
    one_line_error(run(*base, "--seed", "3"), "other settings", "seed: was 0, now 3")
    one_line_error(run(*base, "--prm", "default", "--dense-reward", "delta"), "dense_reward", "prm")
    proc = run(*base, "--seed", "3", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert json.loads((Path(out) / "config.json").read_text())["seed"] == 3
