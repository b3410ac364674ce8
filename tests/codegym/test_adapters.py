"""LoRA adapters (``codegym.adapters``): seeded injection, switching off, peft-format save and
load, and adapter directories wherever a model directory is taken (``load_causal_lm``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft", reason="the lora extra (peft) is not installed")

from codegym.adapters import (  # noqa: E402
    adapters_disabled,
    add_lora,
    is_adapter_dir,
    load_adapter,
    save_adapter,
)
from codegym.lm import check_model_dir, load_causal_lm  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codegym.standins import build_standin

    return build_standin(tmp_path_factory.mktemp("base"), arch="llama", tokenizer="llama3", pretrain_steps=0,
                         pretrain_tasks=40)  # fmt: skip


def _ids() -> torch.Tensor:
    return torch.randint(5, 300, (2, 11), generator=torch.Generator().manual_seed(0))


def _trained_lora(base: Path, seed: int = 0) -> torch.nn.Module:
    model, _ = load_causal_lm(base)
    add_lora(model, rank=4, seed=seed)
    with torch.no_grad():  # stand in for training: B = 0 would make the adapter a no-op
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def test_injection_is_seeded_private_and_trains_only_the_adapter(base) -> None:
    models = [load_causal_lm(base)[0] for _ in range(3)]
    state = torch.random.get_rng_state()
    a, b, c = (add_lora(m, rank=4, seed=s) for m, s in zip(models, (0, 0, 1)))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    first = {n: p for n, p in a.named_parameters() if "lora_A" in n}
    assert first and all(torch.equal(p, dict(b.named_parameters())[n]) for n, p in first.items())
    assert any(not torch.equal(p, dict(c.named_parameters())[n]) for n, p in first.items())
    assert all(p.requires_grad == ("lora_" in n) for n, p in a.named_parameters())
    plain, _ = load_causal_lm(base)
    with torch.no_grad():  # B starts at 0: the adapted model computes what the base does
        assert torch.allclose(a(_ids()).logits, plain(_ids()).logits, atol=1e-6)


def test_switched_off_adapters_give_the_base_model(base) -> None:
    model = _trained_lora(base)
    plain, _ = load_causal_lm(base)
    with torch.no_grad():
        adapted = model(_ids()).logits
        with adapters_disabled(model):
            off = model(_ids()).logits
        assert torch.allclose(off, plain(_ids()).logits, atol=1e-6)
        assert not torch.allclose(adapted, off, atol=1e-3)
        assert torch.equal(model(_ids()).logits, adapted)  # switched back on
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)


def test_saved_adapter_loads_with_peft_and_wherever_a_model_is_taken(base, tmp_path) -> None:
    from peft import PeftModel

    model = _trained_lora(base)
    out = save_adapter(model, tmp_path / "adapter", base)
    assert is_adapter_dir(out) and check_model_dir(out) == out
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base.resolve())
    with torch.no_grad():
        want = model(_ids()).logits
        by_peft = PeftModel.from_pretrained(load_causal_lm(base)[0], str(out))(_ids()).logits
        merged, tok = load_causal_lm(out)  # base + adapter, merged; the base's tokenizer
        again = load_adapter(load_causal_lm(base)[0], out)  # kept apart (resume training)
        assert torch.allclose(by_peft, want, atol=1e-5)
        assert torch.allclose(merged(_ids()).logits, want, atol=1e-5)
        assert torch.allclose(again(_ids()).logits, want, atol=1e-6)
    assert type(merged).__name__ == "LlamaForCausalLM" and tok.eos_token_id is not None
    assert any(p.requires_grad for p in again.parameters())
    # an adapter trained on top of an adapter directory: the chain resolves
    second = _trained_lora(out, seed=5)
    chained = save_adapter(second, tmp_path / "second", out)
    with torch.no_grad():
        assert torch.allclose(load_causal_lm(chained)[0](_ids()).logits, second(_ids()).logits, atol=1e-4)


def test_an_adapter_whose_base_is_missing_says_so(base, tmp_path) -> None:
    out = save_adapter(_trained_lora(base), tmp_path / "adapter", base)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (out / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="gone.*not a local directory"):
        load_causal_lm(out)
    with pytest.raises(ValueError, match="rank"):
        add_lora(load_causal_lm(base)[0], rank=0)
    with pytest.raises(ValueError, match="match no layer"):
        add_lora(load_causal_lm(base)[0], rank=2, targets="no_such_proj")
