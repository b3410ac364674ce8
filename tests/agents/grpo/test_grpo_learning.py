"""Seeded learning test: GRPO raises pass@1 of a weak SFT policy on easy tasks.

The setting of ``tests/agents/ppo/test_ppo_learning.py``, with the critic-free trainer:
``pipelines`` with 1-2 steps, a 2-layer x 64 GPT-2 trained by ``agents.sft`` for 200 steps
(weak, but sampling still finds the right line at times), then GRPO (outcome supervision: the
unit-test reward normalised within each task's 8 samples; KL β = 0.04 in the loss) on a fixed
pool of 32 training tasks: 60 iterations of 16 tasks x 8 samples, learning rate 5e-4. Sampled
pass@1 (8 programs per task) on that pool, paired by task, must rise by >= 10 points with the
95 % interval above 0, greedy pass@1 must not fall, and the rollout pass rate must rise.

Measured when written (seed 0, a 2-core machine shared with other jobs, 12 min in all):
sampled pass@1 0.30 -> 0.56 (+0.26 [0.16, 0.35]), greedy 0.47 -> 0.66, rollout pass rate
0.28 -> 0.48 (first / last 5 iterations), KL 2.3 nats per program at the end. Sparse PPO in
the same setting (``tests/agents/ppo/test_ppo_learning.py``): +0.27, greedy 0.47 -> 0.69.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.grpo.config import GRPOConfig
from codegym.evaluation import evaluate_policy
from codegym.reporting.stats import paired_change
from codegym.tasks import SuiteConfig

SFT = dict(suite=SuiteConfig(min_lines=1, max_lines=2, seed=0), train_tasks=400, steps=200, n_layer=2, n_embd=64,
           vocab_size=400, batch_size=16, eval_tasks=20, buckets="1-2", threads=1, seed=0,
           progress=False)  # fmt: skip
GRPO = dict(iterations=60, num_prompts=16, samples_per_prompt=8, num_minibatches=4, policy_lr=5e-4,
            suite=SuiteConfig(split="train", min_lines=1, max_lines=2, seed=0), max_new_tokens=48, max_lines=6,
            torch_threads=1, seed=0, task_pool=32)  # fmt: skip
EVAL = dict(max_new_tokens=48, max_lines=6)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 4 min of GRPO on an idle 2-core machine; far more on a busy one
def test_grpo_raises_pass_at_1_on_easy_tasks(tmp_path: Path) -> None:
    from agents.grpo.trainer import GRPOTrainer
    from agents.sft import SFTConfig, train_sft
    from codegym.lm import load_causal_lm
    from codegym.tasks import load_suite
    from sandboxes import make_sandbox

    torch.set_num_threads(1)
    train_sft(SFTConfig(out=str(tmp_path / "sft"), **SFT))
    tasks = load_suite("pipelines", min_steps=1, max_steps=2, seed=0).take(GRPO["task_pool"], "train")
    with make_sandbox("local", workers=2) as box:
        policy, tok = load_causal_lm(tmp_path / "sft")
        greedy_before = evaluate_policy(policy, tok, tasks, box, **EVAL)
        before = evaluate_policy(policy, tok, tasks, box, samples=8, seed=123, **EVAL)
        trainer = GRPOTrainer(GRPOConfig(**GRPO), tmp_path / "sft", tmp_path / "grpo", sandbox=box, progress=False)
        try:
            rows = trainer.train()
        finally:
            trainer.close()
        trained, _ = load_causal_lm(tmp_path / "grpo" / "policy")
        greedy_after = evaluate_policy(trained, tok, tasks, box, **EVAL)
        after = evaluate_policy(trained, tok, tasks, box, samples=8, seed=123, **EVAL)
    diff = paired_change(before.passed, after.passed)
    first = np.mean([r["charts/pass_rate"] for r in rows[:5]])
    last = np.mean([r["charts/pass_rate"] for r in rows[-5:]])
    msg = (
        f"sampled pass@1 {before.pass_at_1:.2f} -> {after.pass_at_1:.2f} ({diff}); greedy "
        f"{greedy_before.pass_at_1:.2f} -> {greedy_after.pass_at_1:.2f}; rollout {first:.2f} -> {last:.2f}; "
        f"KL {rows[-1]['charts/kl']:.2f}"
    )
    print(msg)
    assert before.pass_at_1 < 0.7, "the SFT policy is not weak: the test has no room " + msg
    assert diff.mean >= 0.10 and diff.low > 0, msg
    assert greedy_after.pass_at_1 >= greedy_before.pass_at_1, msg
    assert last > first, msg
