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
