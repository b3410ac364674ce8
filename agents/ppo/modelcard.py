"""The model card of a PPO run (``OUT/README.md``, copied to ``OUT/policy/README.md``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.ppo.config import PPOConfig
from codegym.training.modelcard import write_model_card

#: Metrics shown in the card: first and last logged iteration, and the mean of the last 10.
CARD_METRICS = (
    "charts/pass_rate", "charts/return", "charts/test_reward", "charts/dense_reward",
    "charts/prefix_accuracy", "charts/kl", "charts/entropy", "charts/explained_variance",
    "charts/lines", "charts/invalid_rate", "losses/policy", "losses/value",
)  # fmt: skip


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


#: How the card describes each ``dense_reward`` / ``value_init`` setting.
DENSE_NAMES = {"none": "none (sparse: unit tests only)", "delta": "potential-based PRM reward",
               "delta_open": "potential-based PRM reward (no closing term)",
               "paper": "PRM score / number of lines"}  # fmt: skip
VALUE_INIT_NAMES = {"prm": "a plain load of the PRM (backbone + score head)",
                    "policy": "the policy's backbone with a zero score head"}  # fmt: skip

SUMMARY = (
    "A causal language model trained by `codegym train --agent ppo`: token-level PPO in "
    "the `CodePRM-v0` environment (one line of code per step), rewarded by unit tests run "
    "in the codegym sandbox and, per line, by a process reward model when one is "
    "configured. The policy is in `policy/` (a standard transformers causal LM), the "
    "critic in `critic/` (a codegym PRM checkpoint)."
)
#: The summary of a run that trained LoRA adapters (``lora_rank`` > 0).
LORA_SUMMARY = SUMMARY.replace(
    "(a standard transformers causal LM)", "(a peft LoRA adapter on the start policy, named in its adapter_config.json)"
)


def card_metrics(rows: list[dict[str, Any]], keys: Sequence[str] = CARD_METRICS) -> dict[str, Any]:
    """For each of ``keys`` (default :data:`CARD_METRICS`): first -> last logged value (mean
    of the last 10)."""
    metrics: dict[str, Any] = {}
    if rows:
        metrics["iterations logged"] = len(rows)
    for key in keys:
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
        if vals:
            tail = vals[-10:]
            metrics[key] = f"{vals[0]:.4g} -> {vals[-1]:.4g} (mean of last {len(tail)}: {sum(tail) / len(tail):.4g})"
    return metrics


def _training(config: PPOConfig, policy_dir: Path, prm_dir: Path | None) -> dict[str, Any]:
    memory = [f"{config.dtype} compute" + (" (fp32 master weights)" if config.dtype != "fp32" else ""),
              f"LoRA rank {config.lora_rank}" if config.lora_rank else "full fine-tune",
              f"{config.critic} critic"]  # fmt: skip
    if config.gradient_checkpointing:
        memory.append("gradient checkpointing")
    if config.logprob_chunk:
        memory.append(f"log-probs in chunks of {config.logprob_chunk} positions")
    return {
        "precision and memory": ", ".join(memory),
        "start policy": str(policy_dir), "PRM": str(prm_dir) if prm_dir else "none",
        "dense reward": DENSE_NAMES.get(config.dense_reward, config.dense_reward),
        "critic initialisation": VALUE_INIT_NAMES.get(config.value_init, config.value_init),
        "iterations": config.iterations,
        "programs per iteration": f"{config.num_prompts} tasks x {config.samples_per_prompt} samples",
        "policy / critic lr": f"{config.policy_lr} / {config.critic_lr}",
        "KL coefficient": config.kl_coef, "seed": config.seed,
    }  # fmt: skip


def _usage(out: Path, config: PPOConfig) -> str:
    if config.lora_rank:
        return f"""
from codegym.lm import load_causal_lm
model, tokenizer = load_causal_lm("{out / 'policy'}")   # the base + this LoRA adapter, merged
# with peft: PeftModel.from_pretrained(base_model, "{out / 'policy'}")

# evaluate it:  codegym eval --agent ppo --model {out} --suite {config.suite.name}
# learning curves:  codegym plot {out} --out curves.png
"""
    return f"""
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{out / 'policy'}")
tokenizer = AutoTokenizer.from_pretrained("{out / 'policy'}")

# evaluate it:  codegym eval --agent ppo --model {out} --suite {config.suite.name}
# learning curves:  codegym plot {out} --out curves.png
"""


def _reproduce(out: Path, policy_dir: Path, prm_dir: Path | None) -> str:
    return (
        "from agents.ppo import PPOConfig, PPOTrainer\n"
        f"config = PPOConfig.load({str(out / 'config.json')!r})\n"
        f"trainer = PPOTrainer(config, {str(policy_dir)!r}, 'runs/again', prm_dir="
        f"{str(prm_dir) if prm_dir else None!r})\n"
        "trainer.train(); trainer.close()"
    )


def ppo_card(out: Path, config: PPOConfig, policy_dir: Path, prm_dir: Path | None) -> dict[str, Any]:
    """The run's model card parts (:func:`codegym.training.modelcard.write_model_card`), from
    its config and ``metrics.jsonl``."""
    suite = config.suite
    return dict(
        title=f"codegym LLM-PPO policy ({suite.name}, dense reward: {config.dense_reward})",
        summary=LORA_SUMMARY if config.lora_rank else SUMMARY,
        pipeline_tag="text-generation",
        usage=_usage(out, config),
        training=_training(config, policy_dir, prm_dir),
        reproduce=_reproduce(out, policy_dir, prm_dir),
        data=(
            f"Rollouts on the `{suite.split or 'train'}` split of the {suite.describe()} suite; every "
            "program is executed against the task's unit tests in the sandbox."
        ),
        metrics=card_metrics(_rows(out / "metrics.jsonl")),
        tags=["reinforcement-learning", "ppo", "code-generation"],
        extra="Metrics are training-rollout statistics from `metrics.jsonl` (first -> last logged "
        "iteration); evaluate on held-out tasks with `codegym eval`.",
    )


def copy_card_to_policy(card: Path) -> None:
    """Copy the run's card into ``policy/`` (the directory users load), when it exists."""
    policy = card.parent / "policy"
    if policy.is_dir():
        shutil.copyfile(card, policy / card.name)


def write_ppo_card(out: Path, config: PPOConfig, policy_dir: Path, prm_dir: Path | None) -> Path:
    """Write the run's model card from its config and ``metrics.jsonl`` (and copy it into
    ``policy/``); :class:`agents.ppo.trainer.PPOTrainer` writes it when training ends."""
    card = write_model_card(out, **ppo_card(out, config, policy_dir, prm_dir))
    copy_card_to_policy(card)
    return card
