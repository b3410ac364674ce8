"""codegym.lm: loading with a precision and a device, errors that name the real cause,
tokenizer inspection and EOS ids."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from codegym.lm import (
    PROBE_CODE,
    TinyLMConfig,
    build_tiny_lm_dir,
    eos_token_ids,
    inspect_tokenizer,
    load_causal_lm,
    loading,
)

TEXTS = ['def solve(xs):\n    """Sum."""\n', "    xs = [x + 3 for x in xs]\n    return sum(xs)\n"] * 20
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=128)
    return build_tiny_lm_dir(tmp_path_factory.mktemp("tiny"), TEXTS, vocab_size=300, config=cfg)


@pytest.mark.parametrize(("name", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                             ("float16", torch.float16), (None, torch.float32)])  # fmt: skip
def test_load_in_a_precision(tiny, name, dtype) -> None:
    model, _ = load_causal_lm(tiny, dtype=name)
    assert {p.dtype for p in model.parameters()} == {dtype}


def test_default_is_fp32_even_for_a_bf16_checkpoint(tiny, tmp_path) -> None:
    model, tok = load_causal_lm(tiny, dtype="bf16")
    model.save_pretrained(tmp_path / "b")
    tok.save_pretrained(tmp_path / "b")
    assert load_causal_lm(tmp_path / "b")[0].dtype == torch.float32
    assert load_causal_lm(tmp_path / "b", dtype="auto")[0].dtype == torch.bfloat16


def test_a_bad_precision_names_the_flag(tiny) -> None:
    with pytest.raises(ValueError, match="--dtype 'fp8'.*fp32.*bf16"):
        load_causal_lm(tiny, dtype="fp8")


@NO_CUDA
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_on_a_cpu_build_says_so_not_corrupt(tiny, device) -> None:
    with pytest.raises(ValueError, match="CUDA is not available") as info:
        load_causal_lm(tiny, device=device)
    assert "--device cpu" in str(info.value) and "corrupt" not in str(info.value)
    with pytest.raises(ValueError, match="--policy-device cpu"):
        load_causal_lm(tiny, device=device, device_flag="--policy-device")


def test_an_unknown_device_string(tiny) -> None:
    with pytest.raises(ValueError, match="--device 'gpu' is not a torch device"):
        load_causal_lm(tiny, device="gpu")


def test_loading_tells_device_errors_from_broken_files(tiny) -> None:
    # the message torch raises when a CPU build is asked for CUDA inside from_pretrained
    with pytest.raises(ValueError, match="CUDA is not available") as info:
        with loading(tiny, "model"):
            raise AssertionError("Torch not compiled with CUDA enabled")
    assert "corrupt" not in str(info.value)
    with pytest.raises(ValueError, match="out of memory"):
        with loading(tiny, "model"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    # a truly broken file is still reported as one
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        with loading(tiny, "model"):
            raise OSError("unexpected end of file")


def test_inspection_of_codegym_tokenizers(tiny) -> None:
    _, tok = load_causal_lm(tiny)
    report = inspect_tokenizer(tok)
    assert report.newline_safe  # "\n" is always its own token here
    assert report.lone_newline_id == tok.convert_tokens_to_ids("Ċ")
    assert report.newline_ids == (report.lone_newline_id,)
    assert report.eos_ids == (tok.eos_token_id,)
    assert tok.eos_token_id in report.special_ids and tok.pad_token_id in report.special_ids
    assert "".join(report.probe_pieces) == PROBE_CODE


def test_eos_ids_from_every_source(tiny, tmp_path) -> None:
    model, tok = load_causal_lm(tiny)
    assert eos_token_ids(tok) == (tok.eos_token_id,)
    gen = GenerationConfig(eos_token_id=[7, tok.eos_token_id, 9])
    assert eos_token_ids(tok, gen) == (tok.eos_token_id, 7, 9)
    model.generation_config = gen
    assert eos_token_ids(tok, model) == (tok.eos_token_id, 7, 9)
    gen.save_pretrained(tmp_path)
    assert eos_token_ids(tok, tmp_path) == (tok.eos_token_id, 7, 9)
    assert eos_token_ids(tok, tiny) == (tok.eos_token_id,)  # no generation_config.json there


def test_chunked_logprobs_equal_the_whole_batch_values_and_gradients(tiny) -> None:
    from codegym.lm import token_logprobs_chunked

    model, tok = load_causal_lm(tiny)
    ids = torch.tensor([tok(TEXTS[0] + TEXTS[1])["input_ids"]] * 2)  # (2, T)
    hidden = model.transformer(input_ids=ids).last_hidden_state  # (2, T, H)
    head = model.get_output_embeddings()
    full = torch.log_softmax(head(hidden[:, :-1]).float() / 0.7, -1)  # (2, T-1, V)
    want = full.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (2, T-1)
    want_ent = -(full.exp() * full).sum(-1)
    (want.sum() + want_ent.sum()).backward(retain_graph=True)
    grad_full = head.weight.grad.clone()
    head.weight.grad = None
    got, ent = token_logprobs_chunked(hidden[:, :-1], head, ids[:, 1:], temperature=0.7, chunk_tokens=5)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5) and torch.allclose(ent, want_ent, atol=1e-5)
    (got.sum() + ent.sum()).backward()
    assert torch.allclose(head.weight.grad, grad_full, atol=1e-5)
    with torch.no_grad():
        nograd, _ = token_logprobs_chunked(hidden[:, :-1], head, ids[:, 1:], temperature=0.7, chunk_tokens=3)
    assert torch.allclose(nograd, want, atol=1e-5)
    with pytest.raises(ValueError, match="chunk_tokens"):
        token_logprobs_chunked(hidden, head, ids, chunk_tokens=0)
