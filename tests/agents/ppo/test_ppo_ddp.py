"""Data-parallel PPO: ``accelerate launch`` with 2 CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    """Every rank's own error line first (a rank that exits early is otherwise hidden behind the
    other rank's gloo traceback), then the tails of stdout and stderr."""
    mine = [line for line in proc.stderr.splitlines() if "error:" in line or "Error:" in line]
    return "\n".join(mine[-20:]) + "\n--- stdout ---\n" + proc.stdout[-3000:] + "\n--- stderr ---\n" + proc.stderr[-3000:]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_keeps_replicas_in_sync(
    tiny_policy_dir: Path, tmp_path: Path
) -> None:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate is not None, "install the accelerate extra: pip install -e '.[accelerate]'"
    out = tmp_path / "ddp"
    sets = {
        "num_prompts": 2, "samples_per_prompt": 2, "max_new_tokens": 24, "max_line_tokens": 12,
        "max_lines": 4, "suite.min_lines": 1, "suite.max_lines": 2, "critic_warmup_iterations": 0,
        "ent_coef": 0.05, "policy_lr": 1e-3, "sandbox_workers": 1, "torch_threads": 1,
    }  # fmt: skip
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29613",
        "-m", "codegym.cli", "train", "--agent", "ppo", "--policy", str(tiny_policy_dir),
        "--iterations", "2", "--out", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, _failure(proc)
    config = json.loads((out / "config.json").read_text())
    assert config["extra"]["world_size"] == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]  # rank 0 logs once per iteration
    for row in rows:
        assert row["charts/world_size"] == 2
        assert row["charts/ddp_param_spread"] == 0.0  # gradients all-reduced: replicas equal
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    with torch.no_grad():
        moved = max(
            float((a - b).abs().max()) for a, b in zip(after.parameters(), before.parameters())
        )
    assert moved > 0, "two synchronised updates left the policy unchanged"
    assert torch.isfinite(torch.tensor(moved))


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_lean_modes_under_ddp_keep_replicas_in_sync(tiny_policy_dir: Path, tiny_prm_dir: Path, tmp_path: Path,
                                                   lora: bool) -> None:  # fmt: skip
    """bf16 + a shared critic + chunked log-probs + gradient checkpointing (+ LoRA) on 2 gloo
    processes: the output head runs inside the engine's forward (PolicyModel), the value head is
    prepared on its own, and gradients are all-reduced (the replicas stay equal)."""
    if lora:
        pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate is not None, "install the accelerate extra: pip install -e '.[accelerate]'"
    out = tmp_path / "ddp"
    sets = {
        "num_prompts": 2, "samples_per_prompt": 2, "max_new_tokens": 24, "max_line_tokens": 12,
        "max_lines": 4, "suite.min_lines": 1, "suite.max_lines": 2, "critic_warmup_iterations": 1,
        "ent_coef": 0.05, "policy_lr": 1e-3, "sandbox_workers": 1, "torch_threads": 1, "dtype": "bf16",
        "critic": "shared", "logprob_chunk": 8, "gradient_checkpointing": True, "lora_rank": 4 if lora else 0,
        "dense_reward": "delta",
    }  # fmt: skip
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(29614 + lora),
        "-m", "codegym.cli", "train", "--agent", "ppo", "--policy", str(tiny_policy_dir), "--prm", str(tiny_prm_dir),
        "--iterations", "2", "--out", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, _failure(proc)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    for row in rows:
        assert row["charts/world_size"] == 2 and row["charts/ddp_param_spread"] == 0.0
    assert rows[1]["charts/policy_trained"] and rows[1]["charts/grad_norm"] > 0
    from codegym.lm import load_causal_lm
    from codegym.prm.model import ProcessRewardModel

    before, _ = load_causal_lm(tiny_policy_dir)
    after, _ = load_causal_lm(out / "policy")  # an adapter directory with LoRA: base + adapter
    with torch.no_grad():
        moved = max(float((a - b).abs().max()) for a, b in zip(after.parameters(), before.parameters()))
    assert moved > 0, "two synchronised updates left the policy unchanged"
    ProcessRewardModel.from_pretrained(out / "critic")  # the shared critic: a head on ../policy
