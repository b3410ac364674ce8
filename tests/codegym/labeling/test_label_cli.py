"""``codegym label`` as a real subprocess: SIGKILL mid-run, re-run, same file as one clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RESPONSES = 30


def label_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "codegym.cli", "label",
        "--suite", "pipelines", "--min-steps", "4", "--max-steps", "12",
        "--completer", "reference", "--corrupt-rate", "0.2",
        "--responses", str(RESPONSES), "--samples-per-task", "2",
        "--k", "8", "--chunk", "1", "--workers", "2", "--seed", "3",
        "--out", str(out), *extra,
    ]


def rows_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_after(out: Path, rows: int, timeout: float = 120.0) -> int:
    """Start the command, SIGKILL it once ``out`` holds ``rows`` rows; return the rows then."""
    proc = subprocess.Popen(
        label_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while rows_in(out) < rows and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:  # anything the killed run left behind in its session (sandbox workers)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    return rows_in(out)


def test_kill_9_and_rerun_gives_the_same_file(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    done = subprocess.run(label_cmd(clean), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows_in(clean) == RESPONSES
    assert "executions / response" in done.stdout

    out = tmp_path / "killed.jsonl"
    first = kill_after(out, 3)
    assert 3 <= first < RESPONSES, "the run was not killed mid-way"
    second = kill_after(out, first + 5)
    assert first <= second < RESPONSES
    again = subprocess.run(label_cmd(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    assert out.read_bytes() == clean.read_bytes()
    summary = json.loads(out.with_name("killed.summary.json").read_text())
    assert summary == json.loads(clean.with_name("clean.summary.json").read_text())
    assert summary["responses"] == RESPONSES


def test_bad_arguments_exit_with_a_message(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "codegym.cli", "label", "--out", str(tmp_path / "x.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2 and "--policy" in res.stderr
    res = subprocess.run(label_cmd(tmp_path / "y.jsonl", "--k", "0"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "k (completions per prefix)" in res.stderr


@pytest.mark.parametrize("flag", ["--linear"])
def test_linear_flag_writes_linear_rows(tmp_path: Path, flag: str) -> None:
    out = tmp_path / "lin.jsonl"
    cmd = label_cmd(out, flag)
    cmd[cmd.index("--responses") + 1] = "4"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["mode"] for r in rows] == ["linear"] * 4


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_without_cuda_is_refused_naming_the_cause(tmp_path: Path, tiny_policy_dir: Path, capsys) -> None:
    from codegym.cli import main

    out = tmp_path / "l.jsonl"
    assert main(["label", "--policy", str(tiny_policy_dir), "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err and not out.exists()


def test_dtype_loads_the_completer_in_that_precision(tmp_path: Path, tiny_policy_dir: Path, monkeypatch) -> None:
    from codegym.cli import main

    monkeypatch.setenv("CODEGYM_SMOKE", "1")
    out = tmp_path / "l.jsonl"
    assert main(["label", "--policy", str(tiny_policy_dir), "--dtype", "bf16", "--max-task-lines", "2",
                 "--workers", "1", "--max-new-tokens", "24", "--out", str(out)]) == 0  # fmt: skip
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and all(r["run"]["completer"].endswith("dtype=bf16") for r in rows)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_overwrite_deletes_nothing_when_a_flag_is_refused(tmp_path: Path, tiny_policy_dir: Path) -> None:
    from codegym.cli import main

    out = tmp_path / "l.jsonl"
    out.write_text('{"kept": true}\n')
    assert main(["label", "--policy", str(tiny_policy_dir), "--device", "cuda", "--overwrite", "--out", str(out)]) == 2
    assert out.read_text() == '{"kept": true}\n'
