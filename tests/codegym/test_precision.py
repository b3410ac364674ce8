"""codegym.precision: dtype names, device checks, and mixed-precision training that keeps
small updates (the control: plain bf16 AdamW loses them)."""

from __future__ import annotations

import pytest
import torch

from codegym.precision import (
    MixedPrecision,
    check_device,
    check_trainable_dtypes,
    dtype_name,
    resolve_dtype,
)
from codegym.standins import StandinSpec, build_family_model, code_documents, train_family_tokenizer


@pytest.fixture(scope="module")
def lm():
    """A tiny Qwen2 stand-in (random init) and one batch of code."""
    torch.set_num_threads(1)
    texts = [program for _, program in code_documents(40)]
    tok = train_family_tokenizer(texts, "qwen2", vocab_size=400)
    spec = StandinSpec(arch="qwen2", tokenizer="qwen2", hidden_size=64, num_layers=2)
    ids = torch.tensor([tok(texts[0])["input_ids"][:96], tok(texts[1])["input_ids"][:96]])  # (2, 96)
    return spec, tok, ids


def _model(lm, dtype: torch.dtype):
    spec, tok, _ = lm
    return build_family_model(spec, tok).to(dtype)


def _one_step(model, ids, mp: MixedPrecision | None, lr: float = 1e-6) -> float:
    """One AdamW step at ``lr`` on the LM loss; returns the fraction of trainable weights
    (entries with a non-zero gradient) whose stored value changed."""
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ctx = mp.autocast() if mp is not None else torch.autocast("cpu", enabled=False)
    with ctx:
        loss = model(input_ids=ids, labels=ids).loss
    if mp is not None:
        mp.backward(loss)
        mp.step(opt, max_norm=1.0)
    else:
        loss.backward()
        opt.step()
    moved = total = 0
    for p, b in zip(params, before):
        live = p.grad != 0
        moved += int(((p.detach() != b) & live).sum())
        total += int(live.sum())
    return moved / total


def test_plain_bf16_adamw_loses_small_updates(lm) -> None:
    """The control: a bf16 model stepped at lr 1e-6 keeps almost every weight as it was."""
    model = _model(lm, torch.bfloat16)
    assert _one_step(model, lm[2], None) < 0.1


def test_mixed_precision_moves_every_weight_at_lr_1e_6(lm) -> None:
    model = MixedPrecision("bf16").prepare(_model(lm, torch.bfloat16))
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # fp32 master weights
    mp = MixedPrecision("bf16")
    with mp.autocast():
        assert model(input_ids=lm[2]).logits.dtype == torch.bfloat16  # bf16 compute
    assert _one_step(model, lm[2], mp) > 0.95


def test_fp16_scales_the_loss_and_still_updates(lm) -> None:
    mp = MixedPrecision("fp16")
    assert mp.scaler.is_enabled()
    model = mp.prepare(_model(lm, torch.float16))
    assert _one_step(model, lm[2], mp) > 0.95


def test_frozen_weights_are_stored_in_the_compute_dtype(lm) -> None:
    model = _model(lm, torch.float32)
    model.get_input_embeddings().requires_grad_(False)
    MixedPrecision("bf16").prepare(model)
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
    check_trainable_dtypes(model)  # trainable ones are fp32: accepted
    model.model.layers[0].mlp.up_proj.to(torch.bfloat16)
    with pytest.raises(ValueError, match="up_proj.*bf16.*MixedPrecision"):
        check_trainable_dtypes(model)


def test_fp32_is_a_no_op_with_the_same_interface(lm) -> None:
    mp = MixedPrecision("fp32")
    assert not mp.enabled and not mp.scaler.is_enabled()
    model = mp.prepare(_model(lm, torch.float32))
    assert _one_step(model, lm[2], mp) > 0.95


@pytest.mark.parametrize(("value", "want"), [("bf16", torch.bfloat16), ("bfloat16", torch.bfloat16),
                                             ("FP16", torch.float16), ("half", torch.float16),
                                             (torch.float32, torch.float32), (None, torch.float32),
                                             ("auto", "auto")])  # fmt: skip
def test_dtype_names(value, want) -> None:
    assert resolve_dtype(value) == want


def test_bad_dtypes_name_the_flag() -> None:
    with pytest.raises(ValueError, match="--prm-dtype 'int8'"):
        resolve_dtype("int8", flag="--prm-dtype")
    with pytest.raises(ValueError, match="not a training precision"):
        resolve_dtype(torch.int8)
    with pytest.raises(ValueError, match="'auto' is not a precision"):
        resolve_dtype("auto", allow_auto=False)
    assert dtype_name(torch.bfloat16) == "bf16"


def test_devices() -> None:
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available: .*pass --device cpu"):
            check_device("cuda:1")
