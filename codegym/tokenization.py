"""The tokenisation rule shared by the PRM, the samplers and PPO.

A program is the task's context (the prompt, see :func:`task_context`) followed by the lines
the agent wrote. Its token ids are **not** ``tok(context + "\\n".join(lines))``; they are

    ids = tok(context) + tok(line_1 + "\\n") + tok(line_2 + "\\n") + ... + tok(line_L + "\\n")

i.e. every line is tokenised on its own, newline included, and the pieces are concatenated.
A line's score (PRM) or value (PPO critic) is read at the **last token of that line** (its
``"\\n"`` token for the tokenizers built by :mod:`codegym.lm`).

Why: with this rule the ids of a prefix of ``m`` lines are a prefix of the ids of the whole
program, so a model run incrementally (KV cache, one line per env step) sees exactly the
tokens a full re-encoding sees, and incremental scores equal full scores. It also means a
sampler that generates a line and the trainer that later scores it agree on the tokens:
samplers re-tokenise each generated line with :func:`encode_lines` and, when the generated
tokens differ from the canonical ones (e.g. a token that merged ``"\\n"`` with what follows),
replace them before going on (see :class:`codegym.sampling.LineSampler`).

Special tokens: the context is encoded with ``add_special_tokens=True`` (so tokenizers that
want a BOS get one), lines with ``add_special_tokens=False``. The end of a program is the
tokenizer's EOS token, which agents map to :data:`codegym.constants.SUBMIT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from codegym.tasks.base import Task


class EncodedProgram(NamedTuple):
    """A program tokenised by the rule.

    Attributes:
        input_ids: All ids: context then each line (length ``T``).
        line_ends: For each line, the index in ``input_ids`` of its last token (length ``L``).
        prompt_len: Number of context ids (``input_ids[:prompt_len]``).
    """

    input_ids: list[int]
    line_ends: list[int]
    prompt_len: int


def task_context(task: Task) -> str:
    """The text a model reads before the first line of ``task``.

    It is the prompt, followed by the code prefix when the prefix is not already contained
    in the prompt (HumanEval and ``pipelines`` show the signature + docstring as the prompt
    and start the program with the same text; MBPP-style tasks have prose and no prefix).
    The result ends with ``"\\n"`` unless it is empty.
    """
    return join_context(task.prompt, task.code_prefix)


def join_context(prompt: str, code_prefix: str = "") -> str:
    """Context text from a prompt and a code prefix (see :func:`task_context`)."""
    if not isinstance(prompt, str) or not isinstance(code_prefix, str):
        raise ValueError("prompt and code_prefix must be str")
    text = prompt
    if code_prefix.strip() and code_prefix.strip() not in prompt:
        if text and not text.endswith("\n"):
            text += "\n"
        text += code_prefix
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def _ids(tokenizer: Any, texts: list[str], special: bool) -> list[list[int]]:
    if not texts:
        return []
    out = tokenizer(texts, add_special_tokens=special)["input_ids"]
    return [list(x) for x in out]


def encode_context(tokenizer: Any, context: str) -> list[int]:
    """``tok(context)`` (with the tokenizer's special tokens, e.g. a BOS)."""
    ids = _ids(tokenizer, [context], True)[0]
    if not ids:
        # An empty context still needs one position to condition on.
        fallback = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if fallback is None:
            raise ValueError("empty context and the tokenizer has neither a BOS nor an EOS token")
        ids = [int(fallback)]
    return ids


def encode_lines(tokenizer: Any, lines: Sequence[str]) -> list[list[int]]:
    """``[tok(line + "\\n") for line in lines]`` (no special tokens), batched.

    Raises:
        ValueError: A line contains a newline (lines are single lines by definition).
    """
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise ValueError(f"lines[{i}] must be str, got {type(line).__name__}")
        if "\n" in line:
            raise ValueError(f"lines[{i}] contains a newline; pass one line per item: {line!r}")
    return _ids(tokenizer, [line + "\n" for line in lines], False)


def join_pieces(prompt_ids: Sequence[int], pieces: Sequence[Sequence[int]]) -> EncodedProgram:
    """Prompt ids followed by one id list per line, with each line's last-token index.

    :func:`encode_program` joins the rule's pieces; a caller holding other per-line ids (e.g.
    the ids a policy drew, :attr:`codegym.sampling.LineSampler.line_ids`) joins those.
    """
    ids = list(prompt_ids)
    prompt_len = len(ids)
    ends: list[int] = []
    for piece in pieces:
        ids.extend(piece)
        ends.append(len(ids) - 1)
    return EncodedProgram(ids, ends, prompt_len)


def encode_program(tokenizer: Any, context: str, lines: Sequence[str]) -> EncodedProgram:
    """Token ids of ``context`` + ``lines`` by the rule, with each line's last-token index."""
    return join_pieces(encode_context(tokenizer, context), encode_lines(tokenizer, lines))
