"""PPOTrainer end to end on a tiny random policy: metrics, checkpoints, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.ppo.config import PPOConfig
from codegym.tasks import SuiteConfig

TINY = dict(
    num_prompts=2, samples_per_prompt=2, max_new_tokens=24, max_line_tokens=12, max_lines=4,
    suite=SuiteConfig(split="train", min_lines=1, max_lines=2, seed=0), critic_warmup_iterations=1, num_minibatches=2, sandbox_workers=1,
    torch_threads=1,
)  # fmt: skip


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="dense_reward"):
        PPOConfig(dense_reward="dense").validate()
    with pytest.raises(ValueError, match="num_minibatches"):
        PPOConfig(num_prompts=3, samples_per_prompt=1, num_minibatches=2).validate()
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.from_dict({"lr": 1.0})
    cfg = PPOConfig()
    assert cfg.batch_size == 128 and cfg.minibatch_size == 32
    assert PPOConfig.from_dict(cfg.to_dict()) == cfg


def test_prm_needed_for_dense_or_prm_value_init(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from agents.ppo.trainer import PPOTrainer

    with pytest.raises(ValueError, match="PRM"):
        PPOTrainer(PPOConfig(dense_reward="delta", **TINY), tiny_policy_dir, tmp_path)


def test_two_iterations_log_and_checkpoint_prm_critic(
    tiny_policy_dir: Path, tiny_prm_dir: Path, tmp_path: Path
) -> None:
    from agents.ppo.trainer import PPOTrainer
    from codegym.prm.model import ProcessRewardModel

    cfg = PPOConfig(iterations=2, value_init="prm", **TINY)
    trainer = PPOTrainer(cfg, tiny_policy_dir, tmp_path / "run", prm_dir=tiny_prm_dir)
    try:
        prm = ProcessRewardModel.from_pretrained(tiny_prm_dir)
        for name, tensor in prm.state_dict().items():
            assert torch.equal(trainer.critic.prm.state_dict()[name], tensor), name
        before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
        trainer.train()
    finally:
        trainer.close()
    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[0]["charts/policy_trained"] is False and rows[1]["charts/policy_trained"] is True
    for key in ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
                "charts/pass_rate", "charts/return", "charts/kl", "charts/entropy",
                "charts/kl_coef", "charts/explained_variance", "charts/lines",
                "charts/rollout_tokens_per_s", "charts/update_tokens_per_s"):
        assert key in rows[1], key
    assert rows[1]["losses/entropy"] > 0
    for sub in ("checkpoint/policy", "checkpoint/critic", "policy", "critic", "reference"):
        assert (tmp_path / "run" / sub / "config.json").is_file(), sub
    from transformers import AutoModelForCausalLM

    after = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "policy")
    changed = any(
        not torch.equal(before[n], p) for n, p in after.named_parameters() if n in before
    )
    assert changed, "the policy update after warm-up changed no weight"


_SCRIPT = """
import sys
from agents.ppo.config import PPOConfig
from codegym.tasks import SuiteConfig
from agents.ppo.trainer import PPOTrainer
cfg = PPOConfig.from_dict({cfg!r})
t = PPOTrainer(cfg, {policy!r}, {out!r})
try:
    t.train()
finally:
    t.close()
"""


def _launch(cfg: PPOConfig, policy: Path, out: Path) -> subprocess.Popen:
    code = _SCRIPT.format(cfg=cfg.to_dict(), policy=str(policy), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_kill_9_and_resume_continues_iterations_and_metrics(
    tiny_policy_dir: Path, tmp_path: Path
) -> None:
    cfg = PPOConfig(iterations=5, seed=7, **TINY)
    # Uninterrupted reference run.
    ref = _launch(cfg, tiny_policy_dir, tmp_path / "ref")
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-2000:]
    # Interrupted run: SIGKILL once two iterations are logged, then resume.
    out = tmp_path / "crash"
    proc = _launch(cfg, tiny_policy_dir, out)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "metrics.jsonl").is_file() and len(_rows(out / "metrics.jsonl")) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail("training ended before it could be killed: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(_rows(out / "metrics.jsonl"))
    assert killed_at < cfg.iterations

    from agents.ppo.trainer import PPOTrainer

    trainer = PPOTrainer(cfg, tiny_policy_dir, out)
    try:
        assert 1 <= trainer.iteration <= killed_at
        resumed_from = trainer.iteration
        trainer.train()
        assert trainer.iteration == cfg.iterations
    finally:
        trainer.close()
    rows = _rows(out / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, cfg.iterations + 1))
    ref_rows = _rows(tmp_path / "ref" / "metrics.jsonl")
    # Same tasks, same samples, same weights: the resumed run continues the reference run.
    for got, want in zip(rows, ref_rows):
        for key in ("charts/tokens", "charts/lines", "charts/pass_rate"):
            assert got[key] == pytest.approx(want[key], abs=1e-9), (got["iteration"], key, resumed_from)

