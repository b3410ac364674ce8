"""ProcessRewardModel: save/load with its tokenizer; refuses mismatched checkpoints."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm import ProcessRewardModel, score_programs
from codegym.prm.model import HEAD_WEIGHTS_NAME, PRM_CONFIG_NAME, PRM_FORMAT, tokenizer_fingerprint
from codegym.tokenization import encode_program

TEXTS = ['def solve(xs):\n    """Return the sum."""\n', "    xs = [x + 3 for x in xs]\n    return sum(xs)\n"] * 20
TINY = TinyLMConfig(n_layer=2, n_embd=64, n_head=4, n_positions=256)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_lm_dir(tmp_path_factory.mktemp("base"), TEXTS, vocab_size=300, config=TINY)


def test_roundtrip_keeps_scores_and_head_name(base, tmp_path) -> None:
    prm = ProcessRewardModel.from_base(base, seed=3)
    assert isinstance(prm.score, torch.nn.Linear) and prm.score.out_features == 1
    out = prm.save_pretrained(tmp_path / "prm")
    assert (out / PRM_CONFIG_NAME).is_file() and not (out / HEAD_WEIGHTS_NAME).exists()
    loaded = ProcessRewardModel.from_pretrained(out)
    ctx, lines = [TEXTS[0]], [["    return sum(xs)", "    xs = xs"]]
    a = score_programs(prm.eval(), ctx, lines)[0]
    b = score_programs(loaded, ctx, lines)[0]
    assert a.shape == (2,) and abs(a - b).max() < 1e-6
    # the backbone is a plain AutoModel checkpoint
    from transformers import AutoModel

    AutoModel.from_pretrained(str(out))


def test_bce_scores_are_on_label_scale(base) -> None:
    prm = ProcessRewardModel.from_base(base, objective="bce")
    s = score_programs(prm.eval(), [TEXTS[0]], [["    return sum(xs)"]])[0]
    assert -1.0 < s[0] < 1.0


def test_refuses_a_plain_language_model(base) -> None:
    with pytest.raises(ValueError, match="not a PRM checkpoint"):
        ProcessRewardModel.from_pretrained(base)


def test_refuses_a_swapped_tokenizer(base, tmp_path) -> None:
    out = ProcessRewardModel.from_base(base).save_pretrained(tmp_path / "prm")
    other = build_tiny_lm_dir(tmp_path / "other", ["completely different text ok\n"] * 30, vocab_size=300, config=TINY)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if (other / f).exists():
            shutil.copy(other / f, out / f)
    with pytest.raises(ValueError, match="tokenizer"):
        ProcessRewardModel.from_pretrained(out)


def _legacy_checkpoint(prm: ProcessRewardModel, out) -> None:
    """Write ``prm`` in the version-1 layout by hand: bare backbone + score_head.safetensors."""
    import json

    prm.backbone.save_pretrained(out)
    prm.tokenizer.save_pretrained(out)
    save_file({"weight": prm.score.weight.detach().contiguous(), "bias": prm.score.bias.detach().contiguous()},
              str(out / HEAD_WEIGHTS_NAME))  # fmt: skip
    meta = {"format": PRM_FORMAT, "version": 1, "head": "score", "objective": prm.objective,
            "hidden_size": 64, "vocab_size": len(prm.tokenizer),
            "tokenizer_sha256": tokenizer_fingerprint(prm.tokenizer)}  # fmt: skip
    (out / PRM_CONFIG_NAME).write_text(json.dumps(meta))


def test_loads_with_a_stock_auto_class_head_included(base, tmp_path) -> None:
    from transformers import AutoModelForTokenClassification

    prm = ProcessRewardModel.from_base(base, seed=5)
    with torch.no_grad():
        prm.score.bias.fill_(0.3)  # a head that is not the default init
    out = prm.save_pretrained(tmp_path / "prm")
    stock = AutoModelForTokenClassification.from_pretrained(str(out)).eval()
    assert type(stock).__name__ == "GPT2ForTokenClassification" and stock.config.num_labels == 1
    assert torch.equal(stock.classifier.bias, prm.score.bias)
    enc = encode_program(prm.tokenizer, TEXTS[0], ["    xs = [x + 3 for x in xs]", "    return sum(xs)"])
    ids = torch.tensor([enc.input_ids])
    raw = stock(input_ids=ids).logits[0, :, 0]  # [T]
    ours = score_programs(ProcessRewardModel.from_pretrained(out), [TEXTS[0]],
                          [["    xs = [x + 3 for x in xs]", "    return sum(xs)"]])[0]  # fmt: skip
    assert abs(raw[enc.line_ends].detach().numpy() - ours).max() < 1e-5
    # the stock model is the PRM's computation (not the same numbers by luck of the init)
    assert raw.std() > 0


def test_bce_prm_through_the_auto_class(base, tmp_path) -> None:
    from transformers import AutoModelForTokenClassification

    prm = ProcessRewardModel.from_base(base, objective="bce", seed=1)
    out = prm.save_pretrained(tmp_path / "prm")
    stock = AutoModelForTokenClassification.from_pretrained(str(out)).eval()
    enc = encode_program(prm.tokenizer, TEXTS[0], ["    return sum(xs)"])
    logit = stock(input_ids=torch.tensor([enc.input_ids])).logits[0, enc.line_ends, 0]
    ours = score_programs(ProcessRewardModel.from_pretrained(out), [TEXTS[0]], [["    return sum(xs)"]])[0]
    assert abs((2 * torch.sigmoid(logit) - 1).detach().numpy() - ours).max() < 1e-5


def test_version1_checkpoints_still_load(base, tmp_path) -> None:
    prm = ProcessRewardModel.from_base(base, seed=7).eval()
    _legacy_checkpoint(prm, tmp_path / "v1")
    old = ProcessRewardModel.from_pretrained(tmp_path / "v1")
    lines = [["    xs = xs[::-1]", "    return sum(xs)"]]
    a = score_programs(prm, [TEXTS[0]], lines)[0]
    assert abs(score_programs(old, [TEXTS[0]], lines)[0] - a).max() < 1e-6
    # re-saving writes the current layout, same scores
    out = old.save_pretrained(tmp_path / "v2")
    assert not (out / HEAD_WEIGHTS_NAME).exists()
    assert abs(score_programs(ProcessRewardModel.from_pretrained(out), [TEXTS[0]], lines)[0] - a).max() < 1e-6


def test_refuses_a_head_of_the_wrong_size(base, tmp_path) -> None:
    out = tmp_path / "v1"
    _legacy_checkpoint(ProcessRewardModel.from_base(base), out)
    save_file({"weight": torch.zeros(1, 32), "bias": torch.zeros(1)}, str(out / HEAD_WEIGHTS_NAME))
    with pytest.raises(ValueError, match="hidden size is 64"):
        ProcessRewardModel.from_pretrained(out)
    (out / HEAD_WEIGHTS_NAME).unlink()
    with pytest.raises(ValueError, match="head weights"):
        ProcessRewardModel.from_pretrained(out)
    # the current layout: a classifier of the wrong size in model.safetensors
    from safetensors.torch import load_file

    out2 = ProcessRewardModel.from_base(base).save_pretrained(tmp_path / "v2")
    weights = load_file(str(out2 / "model.safetensors"))
    weights["classifier.weight"] = torch.zeros(1, 32)
    save_file(weights, str(out2 / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="do not belong together|hidden size"):
        ProcessRewardModel.from_pretrained(out2)


def test_refuses_a_classifier_with_other_labels(base, tmp_path) -> None:
    import json

    out = ProcessRewardModel.from_base(base).save_pretrained(tmp_path / "prm")
    cfg = json.loads((out / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b"}
    cfg["label2id"] = {"a": 0, "b": 1}
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="num_labels=2"):
        ProcessRewardModel.from_pretrained(out)


def test_missing_directory_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ProcessRewardModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(ValueError, match="does not exist"):
        ProcessRewardModel.from_base(tmp_path / "nope")


def test_from_base_reuses_the_language_model_backbone(base) -> None:
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(base))
    prm = ProcessRewardModel.from_base(base)
    assert torch.equal(lm.transformer.h[1].mlp.c_fc.weight, prm.backbone.h[1].mlp.c_fc.weight)
    assert torch.equal(lm.transformer.wte.weight, prm.backbone.wte.weight)


# ------------------------------------------------------------------ precision and devices
def test_bf16_backbone_gets_a_bf16_head_and_scores(base, tmp_path) -> None:
    """Was: 'mat1 and mat2 must have the same dtype' (an fp32 head on a bf16 backbone)."""
    prm = ProcessRewardModel.from_base(base, seed=3, dtype="bf16").eval()
    assert prm.score.weight.dtype == torch.bfloat16
    assert {p.dtype for p in prm.backbone.parameters()} == {torch.bfloat16}
    lines = [["    xs = [x + 3 for x in xs]", "    return sum(xs)"]]
    s16 = score_programs(prm, [TEXTS[0]], lines)[0]
    s32 = score_programs(ProcessRewardModel.from_base(base, seed=3).eval(), [TEXTS[0]], lines)[0]
    assert s16.shape == (2,) and abs(s16 - s32).max() < 0.05  # the same PRM, rounded
    out = prm.save_pretrained(tmp_path / "prm16")
    assert ProcessRewardModel.from_pretrained(out, dtype="auto").score.weight.dtype == torch.bfloat16
    assert ProcessRewardModel.from_pretrained(out).score.weight.dtype == torch.float32  # default fp32


def test_an_fp32_head_on_a_bf16_backbone_is_cast_explicitly(base) -> None:
    prm = ProcessRewardModel.from_base(base, dtype="bf16").eval()
    prm.score.float()
    enc = encode_program(prm.tokenizer, TEXTS[0], ["    return sum(xs)"])
    raw, _ = prm(torch.tensor([enc.input_ids]))  # (1, T)
    assert raw.dtype == torch.float32 and torch.isfinite(raw).all()


def test_train_a_prm_step_in_bf16_with_fp32_master_weights(base) -> None:
    from codegym.precision import MixedPrecision

    mp = MixedPrecision("bf16")
    prm = mp.prepare(ProcessRewardModel.from_base(base, dtype="bf16"))
    assert prm.score.weight.dtype == torch.float32
    opt = torch.optim.AdamW(prm.parameters(), lr=1e-6)
    enc = encode_program(prm.tokenizer, TEXTS[0], ["    return sum(xs)"])
    head = prm.score.weight.detach().clone()
    with mp.autocast():
        raw, _ = prm(torch.tensor([enc.input_ids]))  # (1, T)
        loss = (raw[0, enc.line_ends].float() - 1.0).pow(2).mean()
    mp.backward(loss)
    mp.step(opt, max_norm=1.0)
    assert (prm.score.weight != head).float().mean() > 0.95


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_on_a_cpu_build_names_the_cause(base, tmp_path) -> None:
    out = ProcessRewardModel.from_base(base).save_pretrained(tmp_path / "prm")
    for call in (lambda: ProcessRewardModel.from_pretrained(out, device="cuda"),
                 lambda: ProcessRewardModel.from_base(base, device="cuda", device_flag="--prm-device")):  # fmt: skip
        with pytest.raises(ValueError, match="CUDA is not available") as info:
            call()
        assert "corrupt" not in str(info.value) and "cpu" in str(info.value)
    with pytest.raises(ValueError, match="--dtype 'fp64'"):
        ProcessRewardModel.from_pretrained(out, dtype="fp64")


# ------------------------------------------------------------------ layout 3: backbone elsewhere
def _raw(prm: ProcessRewardModel) -> torch.Tensor:
    enc = encode_program(prm.tokenizer, TEXTS[0], ["    xs = [x + 3 for x in xs]", "    return sum(xs)"])
    with torch.no_grad():
        return prm(torch.tensor([enc.input_ids]))[0]  # (1, T)


def test_head_is_read_without_the_backbone(base, tmp_path) -> None:
    from codegym.prm.model import read_prm_head

    prm = ProcessRewardModel.from_base(base, seed=4, objective="bce")
    out = prm.save_pretrained(tmp_path / "prm")
    weight, bias, objective = read_prm_head(out)
    assert torch.equal(weight, prm.score.weight) and torch.equal(bias, prm.score.bias) and objective == "bce"


def test_a_head_next_to_its_backbone_loads_as_a_prm(base, tmp_path) -> None:
    import shutil as sh

    from codegym.prm.model import save_prm_head

    prm = ProcessRewardModel.from_base(base, seed=5)
    sh.copytree(base, tmp_path / "run" / "policy")
    out = save_prm_head(tmp_path / "run" / "critic", prm.score.weight, prm.score.bias, "mse", prm.tokenizer, "../policy")
    sh.move(tmp_path / "run", tmp_path / "moved")  # the relative backbone moves with it
    again = ProcessRewardModel.from_pretrained(tmp_path / "moved" / out.name)
    assert torch.allclose(_raw(again), _raw(prm), atol=1e-6)
    sh.rmtree(tmp_path / "moved" / "policy")
    with pytest.raises(ValueError, match="reads its backbone from"):
        ProcessRewardModel.from_pretrained(tmp_path / "moved" / out.name)


def test_a_lora_prm_saves_its_adapter_and_loads_merged_or_trainable(base, tmp_path) -> None:
    pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    from codegym.adapters import add_lora, has_lora

    prm = ProcessRewardModel.from_base(base, seed=6)
    add_lora(prm.backbone, rank=4)
    with torch.no_grad():
        for name, p in prm.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
        prm.score.bias.fill_(0.3)
    out = prm.save_pretrained(tmp_path / "lora_prm")
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    merged = ProcessRewardModel.from_pretrained(out)
    trainable = ProcessRewardModel.from_pretrained(out, adapter="train")
    assert not has_lora(merged.backbone) and has_lora(trainable.backbone)
    assert torch.allclose(_raw(merged), _raw(prm), atol=1e-5)
    assert torch.allclose(_raw(trainable), _raw(prm), atol=1e-6)
    # with the adapter off and its original head, it is the PRM it started from
    start = ProcessRewardModel.from_base(base, seed=6)
    view = trainable.adapters_off(head=(start.score.weight, start.score.bias))
    assert torch.allclose(_raw(view), _raw(start), atol=1e-6)
    assert not torch.allclose(_raw(trainable), _raw(start), atol=1e-3)  # the view switches it back on after
