"""``codegym sft --base``: fine-tune a pretrained causal LM (a tiny Qwen2 instruct stand-in)
with its own tokenizer, full or LoRA, in bf16 with fp32 master weights; resume and refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents.sft import SFTConfig, SFTTrainer, train_sft
from codegym.tasks import SuiteConfig

TINY = dict(train_tasks=16, suite=SuiteConfig(min_lines=1, max_lines=2, seed=0), batch_size=4, eval_tasks=2,
            eval_batch_size=2, buckets="1-2", sandbox_workers=1, threads=1, progress=False, warmup_steps=1,
            decay_steps=0, lr=3e-3)  # fmt: skip


@pytest.fixture(scope="module")
def instruct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init Qwen2 instruct stand-in (chat template, two EOS ids)."""
    from codegym.standins import build_standin

    return build_standin(tmp_path_factory.mktemp("sft_base") / "qwen", arch="qwen2", tokenizer="qwen2",
                         instruct=True, pretrain_steps=0, pretrain_tasks=40, num_layers=1)  # fmt: skip


def _contexts(trainer: SFTTrainer) -> list[str]:
    """The decoded contexts of the trainer's encoded programs."""
    return [trainer.tok.decode(ids[:plen], skip_special_tokens=False) for ids, plen in trainer.data]


def test_lora_sft_trains_the_adapter_in_fp32_and_saves_a_peft_dir_that_loads_and_resumes(instruct, tmp_path) -> None:
    from codegym.adapters import is_adapter_dir
    from codegym.lm import load_causal_lm

    out = tmp_path / "lora"
    cfg = SFTConfig(out=str(out), base=str(instruct), lora_rank=4, dtype="bf16", steps=2, checkpoint_every=1, **TINY)
    with SFTTrainer(cfg) as trainer:
        params = dict(trainer.model.named_parameters())
        trained = {n for n, p in params.items() if p.requires_grad}
        assert trained and all(".lora_" in n for n in trained)
        assert {params[n].dtype for n in trained} == {torch.float32}  # master weights
        assert {p.dtype for n, p in params.items() if n not in trained} == {torch.bfloat16}  # the frozen base
        # each task read through the chat template, as rollouts read it
        assert all(c.startswith("<|im_start|>system") and "<|im_start|>assistant\n" in c for c in _contexts(trainer))
        trainer.learn()
    assert is_adapter_dir(out) and not (out / "config.json").exists() and (out / "tokenizer.json").is_file()
    tuned, tok = load_causal_lm(out)  # the base with the adapter merged
    base, _ = load_causal_lm(instruct)
    assert tok.chat_template and any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters()))
    # the same command with more steps resumes at step 2; other settings are refused
    train_sft(SFTConfig(out=str(out), base=str(instruct), lora_rank=4, dtype="bf16", steps=3, checkpoint_every=1, **TINY))
    steps = [r["step"] for r in map(json.loads, (out / "sft_log.jsonl").read_text().splitlines()) if "losses/lm" in r]
    assert steps[-1] == 3 and torch.load(out / "checkpoint" / "sft_state.pt", weights_only=False)["step"] == 3
    with pytest.raises(ValueError, match="lora_rank"):
        SFTTrainer(SFTConfig(out=str(out), base=str(instruct), lora_rank=8, dtype="bf16", steps=3, **TINY))


def test_full_sft_keeps_the_models_eos_ids_and_can_skip_the_chat_template(instruct, tmp_path) -> None:
    from transformers import GenerationConfig

    from codegym.lm import eos_token_ids, load_causal_lm

    out = tmp_path / "full"
    cfg = SFTConfig(out=str(out), base=str(instruct), chat_template=False, steps=1, **TINY)
    with SFTTrainer(cfg) as trainer:
        assert all(p.requires_grad for p in trainer.model.parameters())
        assert not any("<|im_start|>" in c for c in _contexts(trainer))  # the plain prompt
        trainer.learn()
    model, tok = load_causal_lm(out)
    assert type(model).__name__ == "Qwen2ForCausalLM" and (out / "config.json").is_file()
    want = set(eos_token_ids(tok, GenerationConfig.from_pretrained(instruct)))
    assert len(want) == 2 and set(eos_token_ids(tok, model)) == want


def test_bad_settings_are_refused_naming_the_fix(instruct, tmp_path) -> None:
    with pytest.raises(ValueError, match="needs base=DIR"):
        SFTConfig(out=str(tmp_path / "a"), lora_rank=4)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SFTTrainer(SFTConfig(out=str(tmp_path / "b"), base=str(instruct), device="cuda", **TINY))
    with pytest.raises(ValueError, match="does not exist"):
        SFTTrainer(SFTConfig(out=str(tmp_path / "c"), base=str(tmp_path / "nowhere"), **TINY))


@pytest.mark.parametrize("field", ["lora_alpha", "lora_dropout"])
def test_sft_and_ppo_refuse_the_same_bad_lora_fields(field: str, tmp_path: Path) -> None:
    from agents.ppo.config import PPOConfig

    bad = {"lora_alpha": -1.0, "lora_dropout": 1.5}[field]
    with pytest.raises(ValueError, match=field):
        SFTConfig(out=str(tmp_path), base=str(tmp_path), lora_rank=4, **{field: bad})
    with pytest.raises(ValueError, match=field):
        PPOConfig(lora_rank=4, **{field: bad})
