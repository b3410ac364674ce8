"""The model card of a GRPO run (``OUT/README.md``, copied to ``OUT/policy/README.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.grpo.config import GRPOConfig
from agents.ppo.modelcard import card_metrics

#: Metrics shown in the card: first and last logged iteration, and the mean of the last 10.
CARD_METRICS = (
    "charts/pass_rate", "charts/test_reward", "charts/dense_reward", "charts/prefix_accuracy",
    "charts/flat_groups", "charts/advantage_abs", "charts/kl", "charts/entropy", "charts/lines",
    "charts/invalid_rate", "losses/policy", "losses/kl",
)  # fmt: skip

SUMMARY = (
    "A causal language model trained by `codegym train --agent grpo`: critic-free, "
    "group-relative policy optimisation in the `CodePRM-v0` environment (one line of code per "
    "step). Each task's samples form a group; a program's advantage compares its unit-test "
    "reward (and, with process supervision, its lines' rewards from a process reward model or "
    "an exact oracle) with the rest of its group. The policy is in `policy/` (a standard "
    "transformers causal LM)."
)

#: How the card describes each advantage setting.
ADVANTAGE_NAMES = {
    "outcome": "outcome supervision: unit-test reward normalised within the group",
    "process": "process supervision: line rewards normalised within the group, summed to the end",
    "outcome+process": "outcome + process supervision",
}


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _advantage(config: GRPOConfig) -> str:
    """The advantage setting in words (method, baseline, scaling, line rewards)."""
    parts = [ADVANTAGE_NAMES[config.advantage]]
    parts.append("leave-one-out baseline (RLOO)" if config.baseline == "leave-one-out" else "group-mean baseline")
    parts.append("divided by the group's std (GRPO)" if config.scale_by_std else "not divided by the std (Dr. GRPO)")
    if config.uses_process:
        source = "the exact prefix oracle" if config.process_source == "oracle" else "the PRM"
        parts.append(f"line reward: {config.process_reward} of {source}")
        if config.advantage == "outcome+process":
            parts.append(f"process weight {config.process_coef}")
    return "; ".join(parts)


def grpo_card(out: Path, config: GRPOConfig, policy_dir: Path, prm_dir: Path | None) -> dict[str, Any]:
    """The run's model card parts (:func:`codegym.training.modelcard.write_model_card`), from
    its config and ``metrics.jsonl``."""
    suite = config.suite
    policy = out / "policy"
    usage = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f'model = AutoModelForCausalLM.from_pretrained("{policy}")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{policy}")\n\n'
        f"# evaluate it:  codegym eval --agent grpo --model {out} --suite {suite.name}\n"
        f"# learning curves:  codegym plot {out} --out curves.png\n"
    )
    reproduce = (
        "from agents.grpo import GRPOConfig, GRPOTrainer\n"
        f"config = GRPOConfig.load({str(out / 'config.json')!r})\n"
        f"trainer = GRPOTrainer(config, {str(policy_dir)!r}, 'runs/again', prm_dir={str(prm_dir) if prm_dir else None!r})\n"
        "trainer.train(); trainer.close()"
    )
    training = {
        "start policy": str(policy_dir), "PRM": str(prm_dir) if prm_dir else "none",
        "advantage": _advantage(config),
        "KL to the reference": f"β = {config.kl_coef} in the {config.kl_penalty}",
        "loss aggregation": config.loss_aggregation, "iterations": config.iterations,
        "programs per iteration": f"{config.num_prompts} groups x {config.samples_per_prompt} samples",
        "policy lr": config.policy_lr, "seed": config.seed,
    }  # fmt: skip
    return dict(
        title=f"codegym GRPO policy ({suite.name}, advantage: {config.advantage})",
        summary=SUMMARY, pipeline_tag="text-generation", usage=usage, training=training,
        reproduce=reproduce,
        data=(f"Rollouts on the `{suite.split or 'train'}` split of the {suite.describe()} suite; every "
              "program is executed against the task's unit tests in the sandbox."),
        metrics=card_metrics(_rows(out / "metrics.jsonl"), CARD_METRICS),
        tags=["reinforcement-learning", "grpo", "code-generation"],
        extra="Metrics are training-rollout statistics from `metrics.jsonl` (first -> last logged "
        "iteration); `charts/flat_groups` is the share of groups whose programs all got the same "
        "unit-test reward (no outcome signal). Evaluate on held-out tasks with `codegym eval`.",
    )  # fmt: skip


__all__ = ["CARD_METRICS", "grpo_card"]
