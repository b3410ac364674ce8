"""PPO's precision and memory modes on a tiny Qwen2 stand-in: LoRA (the reference is the
adapter switched off), a critic sharing the policy's backbone, bf16 with fp32 master weights,
the env's PRM shared with a LoRA critic, resume, and the default path left as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from agents.ppo.batch import Episode, PPOBatch, forward
from agents.ppo.config import PPOConfig
from agents.ppo.losses import token_logprobs
from agents.ppo.shared_prompt import shared_prompt_logits, to_full
from codegym.tasks import SuiteConfig, load_suite
from codegym.tokenization import task_context

TINY = dict(
    num_prompts=2, samples_per_prompt=2, max_new_tokens=24, max_line_tokens=12, max_lines=4,
    suite=SuiteConfig(split="train", min_lines=1, max_lines=2, seed=0), critic_warmup_iterations=1,
    num_minibatches=2, sandbox_workers=1, torch_threads=1,
)  # fmt: skip
LEAN = dict(critic="shared", dtype="bf16", gradient_checkpointing=True, logprob_chunk=16)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random-init Qwen2 stand-in and a PRM whose backbone is the policy's (a fresh head)."""
    from codegym.prm.model import ProcessRewardModel
    from codegym.standins import build_standin

    root = tmp_path_factory.mktemp("ppo_memory")
    policy = build_standin(root / "policy", arch="qwen2", tokenizer="qwen2", pretrain_steps=0, pretrain_tasks=60)
    prm = ProcessRewardModel.from_base(policy, seed=2)
    with torch.no_grad():
        prm.score.bias.fill_(0.2)
    prm.save_pretrained(root / "prm")
    return policy, root / "prm"


def _trainer(policy: Path, out: Path, prm: Path | None = None, **kw: Any) -> Any:
    from agents.ppo.trainer import PPOTrainer

    return PPOTrainer(PPOConfig(**{**TINY, "iterations": 2, **kw}), policy, out, prm_dir=prm, progress=False)


def _batch(tokenizer: Any) -> PPOBatch:
    tasks = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(2, "train")
    episodes = [Episode(task=t, context=task_context(t), lines=t.solution_lines[: 1 + k], eos=k == 1)
                for t in tasks for k in range(2)]  # fmt: skip
    return PPOBatch.from_episodes(episodes, tokenizer)


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time") and "per_s" not in k} for r in rows]


def test_lora_trains_only_the_adapter_and_the_reference_is_the_base(qwen, tmp_path) -> None:
    pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    from agents.ppo.agent import resolve_policy_dir
    from codegym.lm import load_causal_lm

    policy_dir, _ = qwen
    trainer = _trainer(policy_dir, tmp_path / "run", lora_rank=4, critic_warmup_iterations=0, policy_lr=1e-2,
                       ent_coef=0.05)  # an entropy gradient even when every return is 0
    try:
        assert trainer.ref is None  # no copy: the reference is the adapter switched off
        named = dict(trainer.policy.named_parameters())
        before = {n: p.detach().clone() for n, p in named.items()}
        trainer.train()
        lora = {n for n in named if "lora_" in n}
        assert lora and all(named[n].requires_grad == (n in lora) for n in named)
        assert all(torch.equal(named[n], before[n]) for n in named if n not in lora)  # the base is frozen
        assert any(not torch.equal(named[n], before[n]) for n in lora if "lora_B" in n)
        batch = _batch(trainer.tokenizer)
        with torch.no_grad():
            ref = trainer._reference_forward(batch, None).logprobs
            trained = forward(trainer.policy, batch).logprobs
    finally:
        trainer.close()
    base, _ = load_causal_lm(policy_dir)
    with torch.no_grad():
        want = forward(base, batch).logprobs
    mask = batch.action_mask
    assert torch.allclose(ref[mask], want[mask], atol=1e-5)
    assert not torch.allclose(trained[mask], want[mask], atol=1e-3)  # the adapter moved the policy
    run = tmp_path / "run"
    assert (run / "policy" / "adapter_config.json").is_file() and not (run / "policy" / "model.safetensors").exists()
    assert (run / "reference" / "reference.json").is_file() and not (run / "reference" / "config.json").exists()
    # the adapter directory loads like any policy (base + adapter, merged)
    loaded, _ = load_causal_lm(resolve_policy_dir(run))
    with torch.no_grad():
        assert torch.allclose(forward(loaded, batch).logprobs[mask], trained[mask], atol=1e-5)


def test_shared_critic_reads_the_prm_head_on_the_policy_backbone_and_trains(qwen, tmp_path) -> None:
    from agents.ppo.critic import build_critic, critic_values
    from codegym.prm.model import ProcessRewardModel

    policy_dir, prm_dir = qwen
    trainer = _trainer(policy_dir, tmp_path / "run", prm_dir, critic="shared", value_init="prm", logprob_chunk=16)
    try:
        assert trainer.critic is None and trainer.value_head is not None
        batch = _batch(trainer.tokenizer)
        mask = batch.action_mask
        with torch.no_grad():
            values = trainer._policy_forward(batch, None, grad=False).values
            # this PRM kept the policy's backbone: the shared head gives the PRM critic's values
            prm_values = critic_values(build_critic("prm", prm_dir, None), batch.input_ids, batch.attention_mask)[:, :-1]
        assert torch.allclose(values[mask], prm_values[mask], atol=1e-5)
        policy0 = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
        head0 = trainer.value_head.score.weight.detach().clone()
        row = trainer.train_iteration()  # warm-up: only the head trains
        assert all(torch.equal(p, policy0[n]) for n, p in trainer.policy.named_parameters())
        assert not torch.equal(trainer.value_head.score.weight, head0)
        assert row["losses/value"] > 0 and row["charts/value_grad_norm"] > 0
        row = trainer.train_iteration()  # policy loss + value loss through the shared backbone
        assert any(not torch.equal(p, policy0[n]) for n, p in trainer.policy.named_parameters())
        assert row["charts/policy_trained"] and row["charts/grad_norm"] > 0
        trainer.save_final()
        with torch.no_grad():
            values = trainer._policy_forward(batch, None, grad=False).values
    finally:
        trainer.close()
    # the saved critic is a PRM whose backbone is ../policy
    critic = ProcessRewardModel.from_pretrained(tmp_path / "run" / "critic")
    meta = json.loads((tmp_path / "run" / "critic" / "critic.json").read_text())
    with torch.no_grad():
        raw, _ = critic(batch.input_ids, attention_mask=batch.attention_mask)
    again = meta["value_scale"] * critic.to_score(raw[:, :-1]) + meta["value_shift"]
    assert torch.allclose(again[mask], values[mask], atol=1e-5)


def test_bf16_ppo_step_at_lr_1e_6_moves_the_fp32_master_weights(qwen, tmp_path) -> None:
    policy_dir, prm_dir = qwen
    trainer = _trainer(policy_dir, tmp_path / "run", prm_dir, dtype="bf16", value_init="prm", dense_reward="delta",
                       policy_lr=1e-6, critic_lr=1e-6, critic_warmup_iterations=0, iterations=1)  # fmt: skip
    try:
        assert all(p.dtype == torch.float32 for p in trainer.policy.parameters())  # master weights
        assert all(p.dtype == torch.float32 for p in trainer.critic.parameters())
        assert all(p.dtype == torch.bfloat16 for p in trainer.ref.parameters())  # frozen: compute dtype
        assert all(p.dtype == torch.bfloat16 for p in trainer.envs.scorer.prm.parameters())
        mats = {n: p for n, p in trainer.policy.named_parameters() if p.dim() == 2 and "embed" not in n}
        before = {n: p.detach().clone() for n, p in mats.items()}
        trainer.train_iteration()
    finally:
        trainer.close()
    changed = sum(int((p != before[n]).sum()) for n, p in mats.items())
    total = sum(p.numel() for p in mats.values())
    assert changed / total > 0.9, changed / total  # in pure bf16 ~98 % would round away


def test_lora_critic_on_the_prm_is_the_envs_prm_with_its_adapter_off(qwen, tmp_path) -> None:
    pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    from codegym.prm import BatchedPRMScorer, ProcessRewardModel
    from codegym.prm.model import read_prm_head

    policy_dir, prm_dir = qwen
    trainer = _trainer(policy_dir, tmp_path / "run", prm_dir, lora_rank=4, value_init="prm", dense_reward="delta",
                       critic_lr=1e-2, dtype="bf16")  # fmt: skip
    try:
        scorer_prm = trainer.envs.scorer.prm
        critic_prm = trainer.critic.prm
        assert scorer_prm.backbone is critic_prm.backbone  # one PRM backbone in memory
        trainer.train_iteration()  # the critic's adapter and head move ...
        assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in critic_prm.named_parameters() if "lora_B" in n)
        task = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(1, "train")[0]
        original = ProcessRewardModel.from_pretrained(prm_dir, dtype="bf16")  # frozen in the compute dtype
        weight, bias, _ = read_prm_head(prm_dir)
        with torch.no_grad():  # the head as saved (fp32), as the critic's master copy holds it
            original.score.float().weight.copy_(weight)
            original.score.bias.copy_(bias)
        fresh = BatchedPRMScorer(original, 1)
        shared = BatchedPRMScorer(scorer_prm, 1)
        fresh.reset({0: task})
        shared.reset({0: task})
        for line in task.solution_lines:  # ... the env's PRM does not
            assert shared.score_lines([line]) == pytest.approx(fresh.score_lines([line]), abs=1e-6)
        trainer.save_final()
    finally:
        trainer.close()
    critic_dir = tmp_path / "run" / "critic"
    assert (critic_dir / "adapter_config.json").is_file() and not (critic_dir / "model.safetensors").exists()
    ProcessRewardModel.from_pretrained(critic_dir)  # an adapter critic loads as a PRM


def test_lean_lora_run_resumes_to_the_same_rows(qwen, tmp_path) -> None:
    pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    policy_dir, prm_dir = qwen
    # sparse reward: the env's batched PRM scores depend on its KV cache's history by float rounding
    kw = dict(lora_rank=4, value_init="prm", critic_warmup_iterations=0, ent_coef=0.05, **LEAN)
    straight = _trainer(policy_dir, tmp_path / "a", prm_dir, **kw)
    try:
        straight.train()
    finally:
        straight.close()
    first = _trainer(policy_dir, tmp_path / "b", prm_dir, **{**kw, "iterations": 1})
    try:
        first.train()
    finally:
        first.close()
    resumed = _trainer(policy_dir, tmp_path / "b", prm_dir, **kw)
    try:
        assert resumed.iteration == 1
        resumed.train()
    finally:
        resumed.close()
    assert _rows(tmp_path / "b" / "metrics.jsonl") == _rows(tmp_path / "a" / "metrics.jsonl")


def test_default_config_keeps_the_whole_vocabulary_fp32_path(qwen, tmp_path) -> None:
    policy_dir, _ = qwen
    trainer = _trainer(policy_dir, tmp_path / "run")
    try:
        assert trainer.actor is None and trainer.value_head is None and not trainer.mp.enabled
        assert trainer.ref is not trainer.policy and trainer._chunk is None
        assert all(p.dtype == torch.float32 for p in trainer.ref.parameters())
        batch = _batch(trainer.tokenizer)
        scored = trainer.compute_advantages(batch.to(trainer.device))
        split = trainer._split(batch)
        with torch.no_grad():  # today's computation: full-vocabulary logits, prompts shared
            stats = token_logprobs(shared_prompt_logits(trainer.policy, split), split.comp_ids)
        want = to_full(stats.logprobs, split, batch.input_ids.shape[1])
        assert torch.equal(scored.old_logprobs, want)  # bit for bit
    finally:
        trainer.close()


def test_memory_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="critic"):
        PPOConfig(critic="both")
    with pytest.raises(ValueError, match="dtype"):
        PPOConfig(dtype="int8")
    with pytest.raises(ValueError, match="lora_rank"):
        PPOConfig(lora_rank=-1)
    with pytest.raises(ValueError, match="logprob_chunk"):
        PPOConfig(logprob_chunk=-4)
    assert PPOConfig(lora_rank=8, seed=3).lora == {"rank": 8, "alpha": None, "dropout": 0.0, "targets": "all-linear",
                                                   "seed": 3}


def test_a_sharding_engine_is_refused(qwen, tmp_path) -> None:
    """accelerate falls back to DDP on CPU, so an FSDP accelerator cannot be built here: a
    stand-in with its ``state.distributed_type`` is what the trainer reads."""
    from types import SimpleNamespace

    from agents.ppo.trainer import PPOTrainer

    fsdp = SimpleNamespace(state=SimpleNamespace(distributed_type="DistributedType.FSDP"))
    with pytest.raises(ValueError, match="DDP.*not FSDP.*--lora-rank"):
        PPOTrainer(PPOConfig(**TINY), qwen[0], tmp_path / "run", accelerator=fsdp)
