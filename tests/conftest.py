"""Shared fixtures: a tiny policy checkpoint (random 2x64 GPT-2, BPE trained on the fly) and a PRM built on it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2x64 GPT-2 with a BPE tokenizer trained on pipelines prompts + solutions."""
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.tasks import load_suite

    suite = load_suite("pipelines", min_steps=1, max_steps=3, seed=0)
    texts = [t.prompt + t.solution + "\n" for t in suite.take(150, "train")]
    out = tmp_path_factory.mktemp("ppo_policy")
    return build_tiny_lm_dir(out, texts, vocab_size=400, config=TinyLMConfig(n_layer=2, n_embd=64, n_head=2, seed=0))


@pytest.fixture(scope="session")
def tiny_prm_dir(tiny_policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PRM (policy backbone + a seeded random ``score`` head, then perturbed) saved to disk."""
    import torch

    from codegym.prm.model import ProcessRewardModel

    prm = ProcessRewardModel.from_base(tiny_policy_dir, seed=3)
    with torch.no_grad():  # make it differ from the policy backbone, as a trained PRM would
        gen = torch.Generator().manual_seed(1)
        for p in prm.backbone.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
        prm.score.bias.fill_(0.25)
    out = tmp_path_factory.mktemp("ppo_prm")
    prm.save_pretrained(out)
    return out
