"""ProcessRewardModel: save/load with its tokenizer; refuses mismatched checkpoints."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm import ProcessRewardModel, score_programs
from codegym.prm.model import HEAD_WEIGHTS_NAME, PRM_CONFIG_NAME

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
    assert (out / PRM_CONFIG_NAME).is_file() and (out / HEAD_WEIGHTS_NAME).is_file()
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


def test_refuses_a_head_of_the_wrong_size(base, tmp_path) -> None:
    out = ProcessRewardModel.from_base(base).save_pretrained(tmp_path / "prm")
    save_file({"weight": torch.zeros(1, 32), "bias": torch.zeros(1)}, str(out / HEAD_WEIGHTS_NAME))
    with pytest.raises(ValueError, match="hidden size is 64"):
        ProcessRewardModel.from_pretrained(out)
    (out / HEAD_WEIGHTS_NAME).unlink()
    with pytest.raises(ValueError, match="head weights"):
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
