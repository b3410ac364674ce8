"""``codegym train --agent ppo`` and ``codegym eval --agent ppo --model RUN`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegym.cli import main


def test_train_then_eval_the_trained_policy(tiny_policy_dir: Path, tiny_prm_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--agent", "ppo", "--policy", str(tiny_policy_dir), "--prm", str(tiny_prm_dir),
            "--dense-reward", "paper", "--value-init", "prm", "--iterations", "2", "--out", str(out),
            "--min-steps", "1", "--max-steps", "2", "--quiet"]
    for kv in ("num_prompts=2", "samples_per_prompt=2", "max_new_tokens=24", "max_line_tokens=12",
               "max_lines=4", "critic_warmup_iterations=1", "sandbox_workers=1", "torch_threads=1"):
        argv += ["--set", kv]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "charts/pass_rate" in text and "2 iterations" in text
    config = json.loads((out / "config.json").read_text())
    assert config["dense_reward"] == "paper" and config["value_init"] == "prm"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]

    traj = tmp_path / "eval.jsonl"
    assert main(["eval", "--agent", "ppo", "--model", str(out), "--suite", "pipelines",
                 "--min-steps", "1", "--max-steps", "2", "--episodes", "4", "--max-lines", "4",
                 "--out", str(traj)]) == 0
    assert len(traj.read_text().splitlines()) == 4


def test_train_rejects_bad_flags(tiny_policy_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--policy", str(tiny_policy_dir), "--out", str(tmp_path / "x"),
                 "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert main(["train", "--policy", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--policy", str(tiny_policy_dir), "--out", str(tmp_path / "z"),
              "--dense-reward", "oracle"])
