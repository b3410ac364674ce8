"""LineSampler: batched line sampling with a KV cache kept across lines, by the rule."""

from __future__ import annotations

import pytest
import torch

from codegym.constants import SUBMIT
from codegym.lm import TinyLMConfig, build_causal_lm, train_bpe_tokenizer
from codegym.sampling import LineSampler
from codegym.tokenization import encode_program

TEXTS = [
    'def solve(xs):\n    """Apply these steps.\n\n    1. add 3 to every element\n    2. return the sum\n    """\n',
    "    xs = [x + 3 for x in xs]\n    return sum(xs)\n    xs = xs[::-1]\n",
] * 20


@pytest.fixture(scope="module")
def lm():
    torch.set_num_threads(1)
    tok = train_bpe_tokenizer(TEXTS, vocab_size=320)
    model = build_causal_lm(tok, TinyLMConfig(n_layer=2, n_embd=64, n_head=4, n_positions=512)).eval()
    return model, tok


def _naive_greedy_line(model, tok, ids: list[int], max_tokens: int) -> tuple[str, list[int]]:
    """Greedy decoding of one line by full re-encoding at every token (no cache)."""
    gen: list[int] = []
    for _ in range(max_tokens):
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids + gen])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            return (SUBMIT if not gen else tok.decode(gen).split("\n")[0]), gen
        gen.append(nxt)
        if "\n" in tok.decode([nxt]):
            break
    return tok.decode(gen).split("\n")[0], gen


def test_cache_equals_full_encoding_after_sampling(lm) -> None:
    model, tok = lm
    contexts = [TEXTS[0], "short\n", TEXTS[0] + TEXTS[1]]
    sampler = LineSampler(model, tok, max_line_tokens=6, generator=torch.Generator().manual_seed(0))
    sampler.sample_programs(contexts, max_lines=8)
    for b, ctx in enumerate(contexts):
        enc = encode_program(tok, ctx, sampler.lines[b])
        assert sampler.valid_ids[b] == enc.input_ids
        assert int(sampler.next_pos[b]) == len(enc.input_ids)
        with torch.no_grad():
            full = model(torch.tensor([enc.input_ids])).logits[0, -1]
        assert torch.allclose(full, sampler.last_logits[b], atol=1e-4)


def test_greedy_batched_matches_naive_decoding(lm) -> None:
    model, tok = lm
    contexts = [TEXTS[0], "x\n", TEXTS[1]]
    sampler = LineSampler(model, tok, greedy=True, max_line_tokens=5)
    programs = sampler.sample_programs(contexts, max_lines=4)
    for ctx, prog in zip(contexts, programs):
        lines: list[str] = []
        for _ in range(4):
            ids = encode_program(tok, ctx, lines).input_ids
            line, _ = _naive_greedy_line(model, tok, ids, 5)
            if line == SUBMIT:
                break
            lines.append(line)
        assert prog == lines


def test_eos_maps_to_submit_and_inactive_slots_get_none(lm) -> None:
    model, tok = lm
    # force EOS as the most likely token everywhere
    bias = torch.zeros(model.config.vocab_size)
    bias[tok.eos_token_id] = 1e4
    with torch.no_grad():
        old = model.lm_head.weight.clone()
        saved_bias = getattr(model.lm_head, "bias", None)
    try:
        model.lm_head.bias = torch.nn.Parameter(bias)
        sampler = LineSampler(model, tok, greedy=True)
        sampler.start(["a\n", "b\n"])
        assert sampler.next_lines([True, False]) == [SUBMIT, None]
        assert sampler.finished == [True, False]
        assert sampler.next_lines() == [None, SUBMIT]
    finally:
        model.lm_head.bias = saved_bias
        with torch.no_grad():
            model.lm_head.weight.copy_(old)


def test_bad_arguments_raise_value_error(lm) -> None:
    model, tok = lm
    with pytest.raises(ValueError, match="temperature"):
        LineSampler(model, tok, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        LineSampler(model, tok, top_p=1.5)


def test_reencode_false_keeps_the_drawn_ids(lm) -> None:
    """RL mode: the cache holds exactly the drawn ids (+ a forced newline after a cut line)."""
    from codegym.tokenization import encode_context, encode_lines

    model, tok = lm
    contexts = [TEXTS[0], "short\n", TEXTS[1]] * 3
    nl = encode_lines(tok, [""])[0]
    sampler = LineSampler(model, tok, max_line_tokens=6, reencode=False, generator=torch.Generator().manual_seed(1))
    sampler.sample_programs(contexts, max_lines=6)
    non_canonical = cut = 0
    for b, ctx in enumerate(contexts):
        ids = encode_context(tok, ctx)
        assert len(sampler.line_ids[b]) == len(sampler.lines[b]) == len(sampler.line_forced[b])
        for line, piece, forced in zip(sampler.lines[b], sampler.line_ids[b], sampler.line_forced[b]):
            drawn = piece[: len(piece) - forced]
            assert piece[len(piece) - forced :] == (nl if forced else [])
            assert tok.decode(drawn).split("\n", 1)[0].rstrip("\r") == line
            non_canonical += piece != encode_lines(tok, [line])[0]
            cut += forced > 0
            ids += piece
        assert all(sampler.line_exact[b])
        assert sampler.valid_ids[b] == ids  # nothing re-encoded, nothing dropped
        if not sampler.finished[b]:
            with torch.no_grad():
                full = model(torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(full, sampler.last_logits[b], atol=1e-4)
    assert non_canonical > 0 and cut > 0  # the untrained model exercises both cases


def test_reencode_true_flags_replaced_lines(lm) -> None:
    from codegym.tokenization import encode_lines

    model, tok = lm
    sampler = LineSampler(model, tok, max_line_tokens=6, generator=torch.Generator().manual_seed(1))
    sampler.sample_programs([TEXTS[0], TEXTS[1]] * 3, max_lines=6)
    flags = [f for fl in sampler.line_exact for f in fl]
    assert flags and not all(flags)
    for b in range(len(sampler.lines)):
        assert sampler.line_ids[b] == encode_lines(tok, sampler.lines[b])  # the rule, always


def test_growing_cache_samples_what_the_concatenating_cache_samples(lm) -> None:
    """The doubling-buffer cache (default) is a faster store of the same keys and values:
    sampled programs, drawn ids and rebuilds are identical to HF's concatenating cache."""
    model, tok = lm
    contexts = [TEXTS[0], TEXTS[0][:40], TEXTS[0] + "    xs = xs\n"] * 3
    out = []
    for growing in (True, False):
        gen = torch.Generator().manual_seed(5)
        sampler = LineSampler(model, tok, max_line_tokens=12, generator=gen, reencode=False, growing_cache=growing)
        programs = sampler.sample_programs(contexts, max_lines=6)
        out.append((programs, [[list(x) for x in s] for s in sampler.line_ids]))
    assert out[0] == out[1]
    assert any(len(p) > 1 for p in out[0][0])  # several lines: the buffers grew


def test_cache_rebuild_keeps_each_slots_line_record(lm) -> None:
    """A rebuild of the cache (holes make up most of it) re-feeds the valid ids only: what
    each slot sampled (lines, drawn ids, forced ids, exactness, EOS) stays as it was, and
    the cache still equals the slot's ids."""
    from codegym.tokenization import encode_context

    model, tok = lm
    long_ctx = TEXTS[0] * 8  # slot 0: > 128 tokens of history, then masked out by set_slot
    sampler = LineSampler(model, tok, max_line_tokens=6, reencode=False, generator=torch.Generator().manual_seed(3))
    sampler.start([long_ctx, "x\n"])
    sampler.next_lines()
    before = (sampler.lines[1], sampler.line_ids[1], sampler.line_forced[1], sampler.line_exact[1])
    before = tuple([list(x) for x in v] if v and isinstance(v[0], list) else list(v) for v in before)
    holes = sampler.mask.shape[1]
    sampler.set_slot(0, "short\n")  # slot 0's history becomes holes: the cache is rebuilt
    assert sampler.mask.shape[1] < holes  # the rebuild happened
    after = (sampler.lines[1], sampler.line_ids[1], sampler.line_forced[1], sampler.line_exact[1])
    assert after == before and len(sampler.line_ids[1]) == len(sampler.lines[1]) == 1
    ids = encode_context(tok, "x\n") + [i for piece in sampler.line_ids[1] for i in piece]
    assert sampler.valid_ids[1] == ids
    assert sampler.valid_ids[0] == encode_context(tok, "short\n")


# ------------------------------------------------------------------ every tokenizer family
from conftest import LINE_STYLES  # noqa: E402
from reference_lm import ReferenceLM, ReferenceLMConfig, reference_text  # noqa: E402

from codegym.lm import eos_token_ids, load_causal_lm  # noqa: E402
from codegym.tokenization import encode_context, join_pieces, line_rules, policy_context  # noqa: E402


def _text(tok, ids) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _held(sampler: LineSampler, b: int, context: str) -> list[int]:
    """Slot ``b``'s ids as the records hold them: context, each line's piece, the tail."""
    return join_pieces(encode_context(sampler.tokenizer, context), sampler.line_ids[b]).input_ids + sampler.tail_ids[b]


@pytest.mark.parametrize("reencode", [True, False], ids=["eval", "rl"])
@pytest.mark.parametrize(("style", "instruct"), LINE_STYLES)
def test_a_model_continuing_the_reference_writes_its_lines_exactly(style, instruct, reencode, reference_lm_dir,
                                                                  line_tasks) -> None:  # fmt: skip
    """Sampled at temperature 1, a model that continues the reference text writes exactly its
    lines (indentation, blank lines), whatever its tokenizer merges a newline with; the held
    ids decode to exactly that text and end on the EOS; as drawn, every line is exact."""
    model, tok = load_causal_lm(reference_lm_dir(style, instruct))
    contexts = [policy_context(tok, t.prompt, t.code_prefix) for t in line_tasks]
    sampler = LineSampler(model, tok, reencode=reencode, generator=torch.Generator().manual_seed(0))
    programs = sampler.sample_programs(contexts, max_lines=12)
    assert programs == [t.solution_lines for t in line_tasks]
    assert all(sampler.finished) and sampler.end_id == [tok.eos_token_id] * len(contexts)
    merged = 0
    for b, context in enumerate(contexts):
        held = _held(sampler, b, context)
        assert _text(tok, held) == reference_text(tok, context, programs[b])
        assert sampler.valid_ids[b] == held  # the cache holds exactly these
        merged += sum(_text(tok, [i]).count("\n") > 1 for i in held[len(encode_context(tok, context)):])
        if reencode:
            assert sampler.valid_ids[b] == encode_program(tok, context, programs[b]).input_ids + sampler.tail_ids[b]
        else:
            assert all(sampler.line_exact[b]) and sampler.eos_exact[b] and not any(sampler.line_forced[b])
    if not reencode:  # drawn as the tokenizer merges: some token ended two lines
        assert merged >= 1
        if line_rules(tok).layout == "newline_last":
            assert any(piece == [] for pieces in sampler.line_ids for piece in pieces)  # the blank one's


@pytest.mark.parametrize("reencode", [True, False], ids=["eval", "rl"])
@pytest.mark.parametrize("style", ["qwen2", "llama3", "starcoder"])
def test_cut_lines_stay_exact(style, reencode, reference_lm_dir, line_tasks) -> None:
    """Lines cut at ``max_line_tokens``: the held ids still decode to exactly the lines
    returned; as drawn, a cut line gets a forced newline (``newline_last``) or none, and a
    line the model then writes on without a newline is re-encoded (not exact)."""
    model, tok = load_causal_lm(reference_lm_dir(style))
    contexts = [policy_context(tok, t.prompt, t.code_prefix) for t in line_tasks]
    sampler = LineSampler(model, tok, reencode=reencode, max_line_tokens=3, generator=torch.Generator().manual_seed(0))
    programs = sampler.sample_programs(contexts, max_lines=6)
    first = line_rules(tok).layout == "newline_first"
    for b, context in enumerate(contexts):
        assert programs[b] and programs[b] != line_tasks[b].solution_lines[: len(programs[b])]  # cut
        held = _held(sampler, b, context)
        assert sampler.valid_ids[b] == held
        want = reference_text(tok, context, programs[b])
        assert _text(tok, held) in (want, want[:-1])  # an EOS right after a line's text: no newline
        if reencode:
            assert held == encode_program(tok, context, programs[b]).input_ids + sampler.tail_ids[b]
        elif first:
            assert not any(sampler.line_forced[b]) and not all(sampler.line_exact[b])
        else:
            assert sampler.line_forced[b][0] == 1 and sampler.line_exact[b][0]


@pytest.mark.parametrize("style", ["qwen2", "llama3"])
def test_every_eos_id_ends_a_program_and_special_tokens_never_enter_a_line(style, standin_dir, line_tasks,
                                                                           tmp_path) -> None:  # fmt: skip
    """An instruct model ends a program with either EOS id of its generation config; any
    other special token drawn mid-line ends the program too, the line before it intact."""
    from reference_lm import build_reference_lm

    task = line_tasks[0]
    std = standin_dir(style, True)
    model, tok = load_causal_lm(build_reference_lm(tmp_path / "last", std, [task], end="last"))
    ends = eos_token_ids(tok, model)
    assert len(ends) == 2 and ends[0] == tok.eos_token_id
    context = policy_context(tok, task.prompt, task.code_prefix)
    sampler = LineSampler(model, tok, generator=torch.Generator().manual_seed(0))
    assert sampler.sample_programs([context], max_lines=12) == [task.solution_lines]
    assert sampler.end_id == [ends[1]] and sampler.finished == [True]
    marker = "<|im_start|>" if style == "qwen2" else "<|start_header_id|>"
    text = reference_text(tok, context, ["    out = 0" + marker + "1", "    return out"])
    config = ReferenceLMConfig(vocab_size=len(tok), references=[text], end_id=tok.eos_token_id)
    special = ReferenceLM(config).eval()
    special.tokenizer = tok
    for reencode in (True, False):
        sampler = LineSampler(special, tok, reencode=reencode, generator=torch.Generator().manual_seed(0))
        assert sampler.sample_programs([context], max_lines=12) == [["    out = 0"]]
        assert sampler.end_id == [tok.convert_tokens_to_ids(marker)]
        assert tok.convert_tokens_to_ids(marker) not in sampler.valid_ids[0][len(encode_context(tok, context)):]


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "gpt_neox"])
def test_prompts_get_logits_at_one_position_per_slot(arch, tmp_path, line_tasks) -> None:
    """Feeding prompts runs the LM head on one hidden state per slot (never ``[B, T, V]``),
    and the logits are those of a full forward at each prompt's end."""
    from codegym.standins import build_standin

    style = {"gpt2": "codegym", "qwen2": "qwen2", "gpt_neox": "starcoder"}[arch]
    model, tok = load_causal_lm(build_standin(tmp_path / arch, arch=arch, tokenizer=style, pretrain_steps=0,
                                              pretrain_tasks=60))  # fmt: skip
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    contexts = [policy_context(tok, t.prompt, t.code_prefix) for t in line_tasks]
    sampler = LineSampler(model, tok, generator=torch.Generator().manual_seed(0))
    sampler.start(contexts)
    hook.remove()
    assert rows == [len(contexts)]
    for b, context in enumerate(contexts):
        with torch.no_grad():
            full = model(torch.tensor([encode_context(tok, context)])).logits[0, -1]  # (V,)
        assert torch.allclose(full, sampler.last_logits[b], atol=1e-5)
    assert LineSampler(model, tok).rules is sampler.rules  # the newline table: once per tokenizer


def test_a_pretrained_starcoder_style_model_writes_code_after_the_context(tmp_path) -> None:
    """A StarCoder-style stand-in pretrained on whole documents only sees a lone ``"\\n"``
    token where a document ends: after ``tok(context)`` it would end the program at once.
    codegym's context (its final newline left to the first line) is natural text to it: it
    writes indented lines instead."""
    from codegym.standins import build_standin
    from codegym.tasks import load_suite
    from codegym.tokenization import task_context

    torch.set_num_threads(1)
    path = build_standin(tmp_path / "star", arch="gpt_neox", tokenizer="starcoder", pretrain_steps=60,
                         pretrain_tasks=100, num_layers=1)  # fmt: skip
    model, tok = load_causal_lm(path)
    contexts = [task_context(t) for t in load_suite("pipelines", seed=0).take(12, "validation")]

    def p_eos(ids: list[int]) -> float:
        with torch.no_grad():
            return float(torch.softmax(model(torch.tensor([ids])).logits[0, -1], -1)[tok.eos_token_id])

    assert min(p_eos(tok(c)["input_ids"]) for c in contexts) > 0.5  # a lone newline: the end
    assert max(p_eos(encode_context(tok, c)) for c in contexts) < 0.05
    programs = LineSampler(model, tok, greedy=True).sample_programs(contexts, max_lines=4)
    assert all(p and p[0].startswith("    ") for p in programs)
