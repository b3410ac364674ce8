"""The tokenisation rule: ids = tok(context) + sum(tok(line + "\n")); scores at line ends."""

from __future__ import annotations

import pytest

from codegym.lm import train_bpe_tokenizer
from codegym.tokenization import encode_context, encode_lines, encode_program, join_context

TEXTS = [
    'def solve(xs):\n    """Apply these steps.\n\n    1. add 3 to every element\n    2. return the sum\n    """\n',
    "    xs = [x + 3 for x in xs]\n    return sum(xs)\n    xs = xs[::-1]\n",
] * 20


@pytest.fixture(scope="module")
def tok():
    return train_bpe_tokenizer(TEXTS, vocab_size=320)


def test_ids_are_the_concatenation_of_per_line_pieces(tok) -> None:
    lines = ["    xs = [x + 3 for x in xs]", "", "    # note", "    return sum(xs)"]
    enc = encode_program(tok, TEXTS[0], lines)
    pieces = [encode_context(tok, TEXTS[0])] + encode_lines(tok, lines)
    assert enc.input_ids == [i for p in pieces for i in p]
    assert enc.prompt_len == len(pieces[0])
    # each line end is the last token of that line's piece, and that token is the newline
    ends = []
    total = 0
    for p in pieces:
        total += len(p)
        ends.append(total - 1)
    assert enc.line_ends == ends[1:]
    assert all(tok.decode([enc.input_ids[e]]) == "\n" for e in enc.line_ends)
    assert tok.decode(enc.input_ids) == TEXTS[0] + "".join(line + "\n" for line in lines)


def test_prefix_of_lines_gives_prefix_of_ids(tok) -> None:
    lines = ["    xs = xs[::-1]", "    xs = [x + 3 for x in xs]", "    return sum(xs)"]
    full = encode_program(tok, TEXTS[0], lines)
    for m in range(len(lines) + 1):
        part = encode_program(tok, TEXTS[0], lines[:m])
        assert full.input_ids[: len(part.input_ids)] == part.input_ids
        assert full.line_ends[:m] == part.line_ends


def test_newline_is_its_own_token(tok) -> None:
    # the tokenizer splits "\n" before BPE, so no token merges a newline with other text
    for i in range(len(tok)):
        s = tok.decode([i])
        assert "\n" not in s or s == "\n"


def test_lines_with_newlines_are_rejected(tok) -> None:
    with pytest.raises(ValueError, match="newline"):
        encode_lines(tok, ["a\nb"])


def test_join_context() -> None:
    assert join_context("prose") == "prose\n"
    assert join_context("def f():\n", "def f():\n") == "def f():\n"
    assert join_context("Write f.", "import os\n") == "Write f.\nimport os\n"
    assert join_context("") == ""


# ------------------------------------------------------------------ every tokenizer family
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from codegym.tokenization import (  # noqa: E402
    LineSplitter,
    join_pieces,
    line_rules,
    policy_context,
)

LAYOUTS = {"qwen2": "newline_last", "llama3": "newline_last", "starcoder": "newline_first"}
STYLES = [(s, i) for s in LAYOUTS for i in (False, True)]


def _text(tok, ids) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _program(tok, context: str, lines) -> str:
    """The text of the ids a model reads for ``context`` + ``lines`` (see tests/reference_lm.py)."""
    from reference_lm import reference_text

    return reference_text(tok, context, lines)


@pytest.mark.parametrize(("style", "instruct"), STYLES)
def test_every_family_gets_a_layout_whose_ids_decode_to_the_program(style, instruct, standin_dir, line_tasks) -> None:
    """The rule's ids decode to the program, prefixes of lines give prefixes of ids, a line
    ends at the last token of its piece, and the context is encoded as in the whole program
    (with a StarCoder-style tokenizer: without its final newline, never a lone ``"\n"``)."""
    tok = AutoTokenizer.from_pretrained(standin_dir(style, instruct))
    rules = line_rules(tok)
    assert rules.layout == LAYOUTS[style]
    for task in line_tasks:
        context = policy_context(tok, task.prompt, task.code_prefix)
        lines = task.solution_lines
        full = encode_program(tok, context, lines)
        assert _text(tok, full.input_ids) + ("\n" if rules.layout == "newline_first" else "") == _program(tok, context, lines)
        pieces = encode_lines(tok, lines)
        assert full.line_ends == join_pieces(encode_context(tok, context), pieces).line_ends
        for m in range(len(lines) + 1):
            part = encode_program(tok, context, lines[:m])
            assert full.input_ids[: len(part.input_ids)] == part.input_ids
            assert full.line_ends[:m] == part.line_ends
        ctx = encode_context(tok, context)
        natural = tok(_program(tok, context, lines), add_special_tokens=False)["input_ids"]
        assert natural[: len(ctx)] == ctx  # as the whole program's own encoding starts
        if rules.layout == "newline_first":  # the context's newline opens the first line
            assert _text(tok, pieces[0][:1]).startswith("\n") and not _text(tok, ctx).endswith("\n")


@pytest.mark.parametrize(("style", "instruct"), STYLES)
def test_natural_encodings_split_back_into_the_lines(style, instruct, standin_dir, line_tasks) -> None:
    """What a model continuing the text draws (the tokenizer's own encoding of it, merged
    newlines and indentation included) is cut into exactly the program's lines, with pieces
    that partition the ids; the blank lines inside merged tokens are kept."""
    tok = AutoTokenizer.from_pretrained(standin_dir(style, instruct))
    merged = 0
    for task in line_tasks:
        context = policy_context(tok, task.prompt, task.code_prefix)
        ctx = encode_context(tok, context)
        text = _program(tok, context, task.solution_lines)
        natural = tok(text, add_special_tokens=False)["input_ids"]  # (a BOS is in the text)
        assert natural[: len(ctx)] == ctx
        stream = natural[len(ctx) :]
        merged += sum(_text(tok, [i]).count("\n") > 1 for i in stream)
        splitter = LineSplitter(tok)
        lines = [line for i in stream for line in splitter.push(i)]
        last, tail = splitter.close()
        assert last is None and [x.text for x in lines] == task.solution_lines
        assert [i for x in lines for i in x.ids] + tail == stream
        assert ([x.ids for x in lines], tail) == _oracle_pieces(tok, stream)
        assert all(all(x.drawn) and not x.glued for x in lines)
    assert merged >= 1  # a token that ends two lines was read


def _oracle_pieces(tok, stream: list[int]) -> tuple[list[list[int]], list[int]]:
    """The pieces of ``stream`` by the definition, from character offsets (independent of
    :class:`LineSplitter`): every token goes to the line its first character is in; a newline
    ends its line (``newline_last``) or starts the next one (``newline_first``, where the text
    before the first newline is a line only if there is any). Returns (pieces, tail)."""
    texts = [_text(tok, [i]) for i in stream]  # whole characters: they concatenate
    full, starts = "".join(texts), [sum(len(t) for t in texts[:k]) for k in range(len(texts))]
    first = line_rules(tok).layout == "newline_first"
    bounds = [0] + [i + (not first) for i, c in enumerate(full) if c == "\n"]  # where segments start
    segments: list[list[int]] = [[] for _ in bounds]
    for k, start in enumerate(starts):
        segments[max(j for j, b in enumerate(bounds) if b <= start)].append(stream[k])
    ends = bounds[1:] + [len(full)]
    text = [full[b:e] for b, e in zip(bounds, ends)]
    if first and not text[0]:  # nothing before the first newline: no line there
        segments, text = segments[1:], text[1:]
    open_text = text[-1][1:] if first and bounds[1:] and text else (text[-1] if text else "")
    if text and not open_text and not (first and len(bounds) == 1):
        return segments[:-1], segments[-1]  # the open line has no text: its ids are the tail
    return segments, []


def _stream_ids(tok) -> tuple[list[int], list[int]]:
    """Non-special ids that decode to whole characters: (newline ids, the others)."""
    rules = line_rules(tok)
    good = [i for i in range(len(tok)) if i not in rules.special_ids and "\ufffd" not in _text(tok, [i])]
    return [i for i in good if i in rules.newline_ids], [i for i in good if i not in rules.newline_ids]


@pytest.fixture(scope="module")
def blank_line_tokenizers(line_tasks) -> dict[str, object]:
    """Per style, a tokenizer trained on code full of blank lines: tokens such as
    ``"\n\n\n    "`` or ``")\n\n\n"`` end three lines at once."""
    from codegym.standins import train_family_tokenizer

    texts = [t.code_prefix + "\n\n".join(t.solution_lines) + "\n\n\n" for t in line_tasks] * 30
    return {s: train_family_tokenizer(texts, s, vocab_size=320) for s in LAYOUTS}


@pytest.mark.parametrize(("style", "blank"), [(s, False) for s in [*LAYOUTS, "codegym"]] + [(s, True) for s in LAYOUTS])
def test_any_drawn_stream_splits_into_lines_that_decode_to_it(style, blank, standin_dir, blank_line_tokenizers) -> None:
    """Whatever ids a policy draws: the pieces (and the tail) partition them as the
    definition says (each token in the line of its first character), no line holds a
    newline, and the lines put back together are the decoded stream."""
    tok = blank_line_tokenizers[style] if blank else AutoTokenizer.from_pretrained(standin_dir(style))
    if blank:
        assert max(_text(tok, [i]).count("\n") for i in line_rules(tok).newline_ids) >= 3
    newline, other = _stream_ids(tok)
    first = line_rules(tok).layout == "newline_first"

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(st.lists(st.one_of(st.sampled_from(newline), st.sampled_from(other)), max_size=30))
    def check(stream: list[int]) -> None:
        splitter = LineSplitter(tok)
        lines = [line for i in stream for line in splitter.push(i)]
        last, tail = splitter.close()
        lines += [last] if last is not None else []
        assert [i for x in lines for i in x.ids] + tail == stream
        assert ([x.ids for x in lines], tail) == _oracle_pieces(tok, stream)
        assert all("\n" not in x.text for x in lines)
        if first:
            rebuilt = "".join(("" if x.glued else "\n") + x.text for x in lines) + ("\n" if last is None and stream else "")
        else:
            rebuilt = "".join(x.text + "\n" for x in lines[: len(lines) - (last is not None)]) + (last.text if last else "")
        assert rebuilt == _text(tok, stream)

    check()


def test_tokenizers_that_cannot_keep_lines_exact_are_refused() -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from codegym.standins import code_documents

    texts = [p for _, p in code_documents(40)]

    def make(pre, dec):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer, tok.decoder = pre, dec
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>"], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
        tok.train_from_iterator(texts, trainer=trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", clean_up_tokenization_spaces=False)

    both = make(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[^\s\p{L}\p{N}]+\s*|\p{L}+|\p{N}|\s+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), decoders.ByteLevel())  # fmt: skip
    with pytest.raises(ValueError, match="merges a newline both with the text before it and with the indentation"):
        encode_lines(both, ["    x = 1"])
    spaced = make(pre_tokenizers.Metaspace(prepend_scheme="always"), decoders.Metaspace(prepend_scheme="always"))
    with pytest.raises(ValueError, match="does not decode code back to itself"):
        encode_context(spaced, "def f():\n")


def test_rules_are_computed_once_per_tokenizer(tok) -> None:
    rules = line_rules(tok)
    assert line_rules(tok) is rules and rules.layout == "newline_last"
    assert rules.newline_ids == {rules.newline_id}  # codegym's own tokenizers: "\n" alone
    tok.add_tokens(["<extra>"])
    assert line_rules(tok) is not rules and line_rules(tok).size == len(tok)


@pytest.mark.parametrize("style", ["qwen2", "llama3"])
def test_chat_contexts(style, standin_dir) -> None:
    """An instruct tokenizer's context is its chat template's rendering with the code prefix
    after it (BOS once), unless turned off; a base tokenizer's is the plain prompt."""
    inst = AutoTokenizer.from_pretrained(standin_dir(style, True))
    base = AutoTokenizer.from_pretrained(standin_dir(style, False))
    prefix = "def f(xs):\n"
    chat = policy_context(inst, "Sum xs.", prefix)
    assert chat.startswith(inst.apply_chat_template([{"role": "user", "content": "Sum xs."}], tokenize=False,
                                                    add_generation_prompt=True)) and chat.endswith(prefix)  # fmt: skip
    assert policy_context(inst, "Sum xs.", prefix, chat=False) == join_context("Sum xs.", prefix)
    assert policy_context(base, "Sum xs.", prefix) == join_context("Sum xs.", prefix)
    ids = encode_context(inst, chat)
    if inst.bos_token is not None:
        assert ids.count(inst.bos_token_id) == 1 and ids[0] == inst.bos_token_id
        assert encode_context(base, "x = 1\n")[0] == base.bos_token_id  # a plain text gets its BOS
    specials = set(line_rules(inst).special_ids)
    assert sum(i in specials for i in ids) >= 3  # the chat markers are special tokens, not text


def test_loading_a_checkpoint_checks_its_tokenizer(tmp_path) -> None:
    """A checkpoint whose tokenizer cannot keep lines exact is refused when it is loaded,
    naming the directory; a loaded tokenizer carries its rules (computed once)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from codegym.lm import load_tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[^\s\p{L}\p{N}]+\s*|\p{L}+|\p{N}|\s+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainer=trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"checkpoint '.*bad'.*merges a newline both"):
        load_tokenizer(tmp_path / "bad")
    from codegym.lm import build_tiny_lm_dir

    good = load_tokenizer(build_tiny_lm_dir(tmp_path / "good", TEXTS, vocab_size=300))
    assert line_rules(good) is good._codegym_line_rules


def test_text_that_spells_a_special_token_stays_text(standin_dir) -> None:
    tok = AutoTokenizer.from_pretrained(standin_dir("qwen2", True))
    line = "    marker = '<|im_start|>'"
    (piece,) = encode_lines(tok, [line])
    assert not set(piece) & line_rules(tok).special_ids and _text(tok, piece) == line + "\n"
