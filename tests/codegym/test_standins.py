"""Stand-ins of real model families: they load with the Auto classes, their tokenizers split
code as their family does, instruct variants carry a chat template and two EOS ids, and a
brief pretraining makes them write code."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codegym.lm import inspect_tokenizer, load_causal_lm
from codegym.prm.model import tokenizer_fingerprint
from codegym.standins import (
    ARCHITECTURES,
    FAMILIES,
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
    SPEC_FILE,
    StandinSpec,
    build_standin,
    code_documents,
    train_family_tokenizer,
)

FAST = {"pretrain_steps": 0, "pretrain_tasks": 60}
CLASSES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM", "gpt_neox": "GPTNeoXForCausalLM",
           "gpt2": "GPT2LMHeadModel"}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [program for _, program in code_documents(60)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_loads_with_the_auto_classes(arch, tmp_path) -> None:
    path = build_standin(tmp_path / arch, arch=arch, tokenizer="qwen2", **FAST)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == CLASSES[arch]
    assert model.get_input_embeddings().num_embeddings == len(tok)
    ids = tok("def solve(xs):\n    return xs\n", return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits  # (1, T, V)
    assert logits.shape == (1, ids.shape[1], len(tok)) and torch.isfinite(logits).all()
    # codegym's loader takes it too
    loaded, _ = load_causal_lm(path)
    assert type(loaded).__name__ == CLASSES[arch]


def _pre(tok, text: str) -> list[str]:
    """The pre-tokenizer's pieces of ``text`` (byte-level symbols mapped back to text)."""
    pieces = tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return [p.replace("Ġ", " ").replace("Ċ", "\n") for p, _ in pieces]


def test_family_regexes_split_code_like_their_family(texts) -> None:
    code = "):\n    return x\n\nab = 1234"
    qwen = train_family_tokenizer(texts, "qwen2")
    llama = train_family_tokenizer(texts, "llama3")
    star = train_family_tokenizer(texts, "starcoder")
    # Qwen2: punctuation absorbs the newline, "\n\n" is one piece, one digit per piece
    assert _pre(qwen, code) == ["):\n", "   ", " return", " x", "\n\n", "ab", " =", " ", "1", "2", "3", "4"]
    # Llama-3: the same but digits in groups of up to three
    assert _pre(llama, code)[-2:] == ["123", "4"]
    # StarCoder: GPT-2 whitespace runs merge the newline with the next line's indentation
    assert _pre(star, code)[:2] == ["):", "\n   "]
    assert _pre(star, "x\n\n    y")[:2] == ["x", "\n\n   "]  # a blank line too, when indented
    assert _pre(star, "x = 1234")[-4:] == ["1", "2", "3", "4"]
    assert LLAMA3_PATTERN != QWEN2_PATTERN and r"\p{N}{1,3}" in LLAMA3_PATTERN


@pytest.mark.parametrize(
    ("style", "indent", "blank", "safe"),
    [("qwen2", False, True, False), ("llama3", False, True, False), ("starcoder", True, True, False),
     ("codegym", False, False, True)],
)  # fmt: skip
def test_inspection_tells_the_styles_apart(style, indent, blank, safe, texts) -> None:
    tok = train_family_tokenizer(texts, style)
    report = inspect_tokenizer(tok)
    assert report.newline_indent_merges is indent
    assert report.double_newline_merges is blank
    assert report.newline_safe is safe
    # the newline ids are exactly the tokens whose text holds a newline
    for i in report.newline_ids[:50]:
        assert "\n" in tok.decode([i])
    assert report.lone_newline_id is not None and tok.decode([report.lone_newline_id]) == "\n"
    assert len(report.newline_ids) > (1 if not safe else 0)


def test_llama3_style_prepends_bos_after_a_reload(tmp_path) -> None:
    path = build_standin(tmp_path / "llama", arch="llama", tokenizer="llama3", **FAST)
    tok = AutoTokenizer.from_pretrained(path)
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert tok("x = 1")["input_ids"][0] == bos
    assert bos not in tok("x = 1", add_special_tokens=False)["input_ids"]
    assert tok.eos_token == "<|end_of_text|>" and tok.pad_token is None


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_instruct_variant_has_a_chat_template_and_two_eos_ids(family, tmp_path) -> None:
    arch, style = FAMILIES[family]
    base = build_standin(tmp_path / "base", arch=arch, tokenizer=style, **FAST)
    inst = build_standin(tmp_path / "inst", arch=arch, tokenizer=style, instruct=True, **FAST)
    tb, ti = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(inst)
    assert tokenizer_fingerprint(tb) == tokenizer_fingerprint(ti)  # one vocabulary
    rb, ri = inspect_tokenizer(tb, base), inspect_tokenizer(ti, inst)
    assert not rb.has_chat_template and len(rb.eos_ids) == 1
    assert ri.has_chat_template and len(ri.eos_ids) == 2
    turn_end = "<|im_end|>" if family == "qwen2" else "<|eot_id|>"
    assert ti.eos_token == turn_end and ri.eos_ids[0] == ti.convert_tokens_to_ids(turn_end)
    assert ri.eos_ids[1] == tb.eos_token_id  # end of text still ends generation
    assert set(ri.eos_ids) <= set(ri.special_ids)
    text = ti.apply_chat_template([{"role": "user", "content": "Sum xs."}], tokenize=False,
                                  add_generation_prompt=True)  # fmt: skip
    assert "Sum xs." in text and text.endswith("assistant\n" if family == "qwen2" else "assistant<|end_header_id|>\n\n")
    gen = json.loads((inst / "generation_config.json").read_text())
    assert gen["eos_token_id"] == list(ri.eos_ids)


def test_pretraining_makes_it_write_code(tmp_path) -> None:
    path = build_standin(tmp_path / "qwen", arch="qwen2", tokenizer="qwen2")
    meta = json.loads((path / SPEC_FILE).read_text())["pretrain"]
    assert meta["first_loss"] > 4.0 and meta["last_loss"] < 1.5
    model, tok = load_causal_lm(path)
    from codegym.tasks import load_suite

    task = load_suite("pipelines").get("validation", 3)  # not in the training documents
    ids = tok(task.code_prefix, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:])
    first = text.split("\n")[0]
    assert first.startswith("    xs = ") or first.startswith("    return "), text


def test_a_built_directory_is_reused_only_for_the_same_spec(tmp_path) -> None:
    path = build_standin(tmp_path / "s", arch="gpt2", tokenizer="codegym", **FAST)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert build_standin(path, arch="gpt2", tokenizer="codegym", **FAST) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    build_standin(path, arch="gpt2", tokenizer="codegym", seed=1, **FAST)
    assert json.loads((path / SPEC_FILE).read_text())["spec"]["seed"] == 1


def test_saved_precision(tmp_path) -> None:
    path = build_standin(tmp_path / "b", arch="llama", tokenizer="llama3", dtype="bf16", **FAST)
    assert load_causal_lm(path, dtype="auto")[0].dtype == torch.bfloat16
    assert load_causal_lm(path)[0].dtype == torch.float32


def test_bad_specs_are_refused_with_the_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="arch 'mistral'.*qwen2"):
        build_standin(tmp_path / "x", arch="mistral")
    with pytest.raises(ValueError, match="tokenizer 'sentencepiece'"):
        build_standin(tmp_path / "x", tokenizer="sentencepiece")
    with pytest.raises(ValueError, match="unknown stand-in field.*layers"):
        build_standin(tmp_path / "x", layers=3)
    with pytest.raises(ValueError, match="divisible"):
        StandinSpec(hidden_size=30, num_heads=4).validate()
