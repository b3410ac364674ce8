"""The tokenisation rule shared by the PRM, the samplers and PPO.

A program is the task's context (the prompt, see :func:`task_context`) followed by the lines
the agent wrote. Its token ids are **not** ``tok(context + "\\n".join(lines))``: every line is
tokenised on its own and the pieces are concatenated, so that the ids of the first ``m``
lines are a prefix of the ids of the whole program (a model run incrementally, one line per
env step, sees exactly the tokens a full re-encoding sees, and incremental scores equal full
scores). *Where* a line's newline goes depends on the tokenizer (:func:`line_rules` inspects
it once and picks the layout in which pretrained models read the program as natural text):

* ``"newline_last"`` — the newline ends its line (codegym's own tokenizers, where ``"\\n"``
  is always a token of its own; Qwen2 / Llama-3-style regexes, where punctuation absorbs the
  newline after it: ``"):\\n"``)::

      ids = tok(context) + tok(line_1 + "\\n") + ... + tok(line_L + "\\n")

* ``"newline_first"`` — the newline starts the next line (GPT-2 / StarCoder-style regexes
  merge a newline with the indentation after it: ``"\\n   "``). The context's final newline
  is the first line's::

      ids = tok(context[:-1]) + tok("\\n" + line_1) + ... + tok("\\n" + line_L)

  So the context never ends in a lone ``"\\n"`` token, which such a model only sees where a
  document ends (it would draw EOS at once).

A line's score (PRM) or value (PPO critic) is read at the **last token of its piece**. The
context is encoded with the tokenizer's special tokens (a BOS where it adds one) unless it
already starts with the BOS text (a chat template's rendering, see :func:`policy_context`);
lines never get special tokens.

Generated ids are cut into lines by :class:`LineSplitter`, the inverse of the rule: a line
ends on any token that holds a newline, a token holding several newlines ends blank lines
too, and what follows the last newline in a token (the next line's indentation) starts the
next line. Each token belongs to the line of its first character, so the pieces of drawn ids
always decode to the lines the env receives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from codegym.lm import TokenizerReport
    from codegym.tasks.base import Task

#: Where a line's newline goes in its piece (see the module docstring).
Layout = Literal["newline_last", "newline_first"]


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


# ----------------------------------------------------------------------------- the rules
@dataclass(frozen=True)
class LineRules:
    """How one tokenizer's ids map to program lines; computed once per tokenizer by
    :func:`line_rules` (a pass over the vocabulary) and cached on it.

    Attributes:
        layout: Where a line's newline goes (see the module docstring).
        newline_ids: Every id whose text holds a newline (a line ends there).
        leading_newline_ids: The ids whose text starts with a newline.
        special_ids: Every special token (BOS, EOS, padding, chat markers): never text of a line.
        newline_id: The id of ``"\\n"`` alone (a forced line end).
        size: ``len(tokenizer)`` when computed (the cache is redone if it changes).
        report: The inspection the rules come from.
    """

    layout: Layout
    newline_ids: frozenset[int]
    leading_newline_ids: frozenset[int]
    special_ids: frozenset[int]
    newline_id: int
    size: int
    report: TokenizerReport = field(repr=False, compare=False)


_CACHE_ATTR = "_codegym_line_rules"


def line_rules(tokenizer: Any) -> LineRules:
    """The :class:`LineRules` of ``tokenizer``: computed and checked on first use, then cached
    on the tokenizer object (a PPO run builds its sampler every iteration; the vocabulary is
    decoded once).

    Raises:
        ValueError: No layout keeps lines exact for this tokenizer (the message says what the
            tokenizer does and what would fix it).
    """
    cached = getattr(tokenizer, _CACHE_ATTR, None)
    if isinstance(cached, LineRules) and cached.size == len(tokenizer):
        return cached
    rules = _make_rules(tokenizer)
    try:
        setattr(tokenizer, _CACHE_ATTR, rules)
    except AttributeError:  # pragma: no cover - a tokenizer that refuses attributes
        pass
    return rules


def _make_rules(tokenizer: Any) -> LineRules:
    from codegym.lm import inspect_tokenizer

    report = inspect_tokenizer(tokenizer)
    name = _name(tokenizer)
    if report.newline_indent_merges and report.newline_after_text:
        raise ValueError(
            f"tokenizer {name} merges a newline both with the text before it and with the "
            f"indentation after it (pieces of a code sample: {_shown(report)}); no line-by-line "
            "encoding reads as natural text to its model. Use a tokenizer whose pre-tokenizer "
            "splits newlines from one side (e.g. Qwen2/Llama-3 or StarCoder-style regexes)"
        )
    if report.lone_newline_id is None:
        raise ValueError(f"tokenizer {name} has no token that is exactly '\\n'; a cut line cannot be ended")
    vocab = dict(zip(report.newline_ids, tokenizer.batch_decode([[i] for i in report.newline_ids])))
    rules = LineRules(
        layout="newline_first" if report.newline_indent_merges else "newline_last",
        newline_ids=frozenset(report.newline_ids),
        leading_newline_ids=frozenset(i for i, text in vocab.items() if text.startswith("\n")),
        special_ids=frozenset(report.special_ids),
        newline_id=int(report.lone_newline_id),
        size=len(tokenizer),
        report=report,
    )
    _check_round_trip(tokenizer, rules)
    return rules


def _name(tokenizer: Any) -> str:
    path = getattr(tokenizer, "name_or_path", "") or ""
    return f"{type(tokenizer).__name__} at {path!r}" if path else type(tokenizer).__name__


def _shown(report: TokenizerReport) -> str:
    return repr([p for p in report.probe_pieces if "\n" in p][:6])


def _check_round_trip(tokenizer: Any, rules: LineRules) -> None:
    """Refuse a tokenizer on which the rule or the splitter loses text: the probe program
    encoded by the rule must decode to itself, and its natural encoding must split back into
    its lines (what a model that continues the text writes)."""
    from codegym.lm import PROBE_CODE

    head, body = PROBE_CODE.split("\n", 1)
    context, lines = head + "\n", body[:-1].split("\n")
    name = _name(tokenizer)
    ids = _encode_program(tokenizer, rules, context, lines).input_ids
    text = _decode(tokenizer, ids, skip_special=True)
    want = PROBE_CODE[:-1] if rules.layout == "newline_first" else PROBE_CODE
    if text != want:
        raise ValueError(
            f"tokenizer {name} does not decode code back to itself by codegym's line rule "
            f"({rules.layout}): {want[:60]!r}... came back as {text[:60]!r}...; a tokenizer that "
            "adds or drops spaces or newlines (e.g. a SentencePiece dummy prefix) cannot be used"
        )
    ctx = context[:-1] if rules.layout == "newline_first" else context
    natural = tokenizer(PROBE_CODE, add_special_tokens=False)["input_ids"]
    ctx_ids = tokenizer(ctx, add_special_tokens=False)["input_ids"]
    if natural[: len(ctx_ids)] != ctx_ids:
        raise ValueError(
            f"tokenizer {name} merges the context's end with the first line ({_shown(rules.report)}): "
            "a model continuing the context would not start a line where codegym expects one"
        )
    splitter = LineSplitter(tokenizer, rules)
    got: list[str] = []
    for i in natural[len(ctx_ids) :]:
        got.extend(line.text for line in splitter.push(i))
    last, _ = splitter.close()
    got.extend([last.text] if last is not None else [])
    if got != lines:
        raise ValueError(
            f"tokenizer {name}: codegym's line splitter reads its tokens of a code sample as "
            f"{got[:4]!r}..., not {lines[:4]!r}...; its newline tokens are not supported"
        )


# ----------------------------------------------------------------------------- contexts
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


def chat_context(tokenizer: Any, prompt: str, code_prefix: str = "") -> str:
    """The context of an instruct model: the chat template's rendering of ``prompt`` as a
    user turn with the assistant's turn opened, then the code prefix (the start of the
    assistant's program, ending with ``"\\n"``), as instruct models are fine-tuned to answer.

    Raises:
        ValueError: The tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no chat template; use join_context")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    if code_prefix.strip():
        text += code_prefix if code_prefix.endswith("\n") else code_prefix + "\n"
    return str(text)


def policy_context(tokenizer: Any, prompt: str, code_prefix: str = "", chat: bool = True) -> str:
    """The context a policy model reads: :func:`chat_context` when ``chat`` is on and the
    tokenizer has a chat template (an instruct model), else :func:`join_context` (the PRM
    always reads the plain :func:`task_context`)."""
    if chat and getattr(tokenizer, "chat_template", None):
        return chat_context(tokenizer, prompt, code_prefix)
    return join_context(prompt, code_prefix)


# ----------------------------------------------------------------------------- encoding
def _ids(tokenizer: Any, texts: list[str], special: bool, code: bool = False) -> list[list[int]]:
    """``tok(texts)``; with ``code``, text that spells a special token (``"<|endoftext|>"``
    inside a string literal) stays text: a line's ids never hold a special token."""
    if not texts:
        return []
    extra = {"split_special_tokens": True} if code else {}
    out = tokenizer(texts, add_special_tokens=special, **extra)["input_ids"]
    return [list(x) for x in out]


def _decode(tokenizer: Any, ids: Sequence[int], skip_special: bool = False) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=skip_special, clean_up_tokenization_spaces=False))


def encode_context(tokenizer: Any, context: str) -> list[int]:
    """The context's ids by the rule: ``tok(context)``, without its final newline in the
    ``newline_first`` layout; with the tokenizer's special tokens (e.g. a BOS) unless the text
    already starts with the BOS token (a chat rendering)."""
    return _encode_context(tokenizer, line_rules(tokenizer), context)


def _encode_context(tokenizer: Any, rules: LineRules, context: str) -> list[int]:
    if rules.layout == "newline_first" and context.endswith("\n"):
        context = context[:-1]
    bos = getattr(tokenizer, "bos_token", None)
    ids = _ids(tokenizer, [context], not (bos and context.startswith(str(bos))))[0]
    if not ids:
        # An empty context still needs one position to condition on.
        fallback = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if fallback is None:
            raise ValueError("empty context and the tokenizer has neither a BOS nor an EOS token")
        ids = [int(fallback)]
    return ids


def encode_lines(tokenizer: Any, lines: Sequence[str]) -> list[list[int]]:
    """Each line's piece by the rule, batched: ``tok(line + "\\n")``, or ``tok("\\n" + line)``
    in the ``newline_first`` layout; never a special token (not even for text that spells one).

    Raises:
        ValueError: A line contains a newline (lines are single lines by definition).
    """
    return _encode_lines(tokenizer, line_rules(tokenizer), lines)


def _encode_lines(tokenizer: Any, rules: LineRules, lines: Sequence[str]) -> list[list[int]]:
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise ValueError(f"lines[{i}] must be str, got {type(line).__name__}")
        if "\n" in line:
            raise ValueError(f"lines[{i}] contains a newline; pass one line per item: {line!r}")
    if rules.layout == "newline_first":
        return _ids(tokenizer, ["\n" + line for line in lines], False, code=True)
    return _ids(tokenizer, [line + "\n" for line in lines], False, code=True)


def join_pieces(prompt_ids: Sequence[int], pieces: Sequence[Sequence[int]]) -> EncodedProgram:
    """Prompt ids followed by one id list per line, with each line's last-token index.

    :func:`encode_program` joins the rule's pieces; a caller holding other per-line ids (e.g.
    the ids a policy drew, :attr:`codegym.sampling.LineSampler.line_ids`) joins those. An empty
    piece (a blank line whose newline sat in the previous line's last token) ends where the
    line before it ends.
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
    return _encode_program(tokenizer, line_rules(tokenizer), context, lines)


def _encode_program(tokenizer: Any, rules: LineRules, context: str, lines: Sequence[str]) -> EncodedProgram:
    return join_pieces(_encode_context(tokenizer, rules, context), _encode_lines(tokenizer, rules, lines))


# ----------------------------------------------------------------------------- splitting
class SplitLine(NamedTuple):
    """One line cut from generated ids by :class:`LineSplitter`.

    Attributes:
        text: The line (no newline).
        ids: Its piece: the ids whose first character is in the line (may be empty: a blank
            line whose newline sat in the token that ended the line before).
        drawn: Per id, whether it was drawn by the model (False: forced or re-fed).
        glued: ``newline_first`` only: the piece lacks its leading newline (the model wrote
            on, right after the context or a line that ended without one); only its
            re-encoding by the rule decodes to the program.
        forced_end: The line was ended by a forced newline (its last id), not by the model.
    """

    text: str
    ids: list[int]
    drawn: list[bool]
    glued: bool = False
    forced_end: bool = False


class LineSplitter:
    """Cuts a stream of generated ids into lines, token by token (the inverse of the rule).

    A token holding a newline ends the open line; a token holding ``k`` newlines ends ``k``
    lines (blank ones after the first, in practice); the text after its last newline starts
    the next line (indentation merged with the newline). Every token goes to the line its
    first character belongs to: in the ``newline_last`` layout a newline belongs to the line it
    ends, in ``newline_first`` to the line it starts. The stream starts at the end of a line
    (the context, or lines encoded by the rule): in ``newline_first`` the first line's leading
    newline is still to come.

    Args:
        tokenizer: The tokenizer of the ids.
        rules: Its :func:`line_rules` (looked up when omitted).
    """

    def __init__(self, tokenizer: Any, rules: LineRules | None = None) -> None:
        self.tokenizer = tokenizer
        self.rules = rules or line_rules(tokenizer)
        self.restart()

    def restart(self) -> None:
        """Start at the end of a line (nothing open)."""
        self.ids: list[int] = []  # the open line's piece so far
        self.drawn: list[bool] = []
        self._text_ids: list[int] = []  # ids since the last token that held a newline
        self._carry = ""  # text of the open line before _text_ids (after a merged newline)
        self._started = self.rules.layout == "newline_last"

    @property
    def open_text(self) -> str:
        """The open line's text so far."""
        return self._carry + (_decode(self.tokenizer, self._text_ids) if self._text_ids else "")

    def push(self, token: int, drawn: bool = True, end_line: bool = False) -> list[SplitLine]:
        """Take the next id; returns the lines it completed (in order; usually none or one).

        Args:
            token: The id (never a special token: those end the program, see :meth:`close`).
            drawn: Whether the model drew it (False for a forced or re-fed id).
            end_line: A forced newline: it ends the open line and belongs to it.
        """
        if token not in self.rules.newline_ids and not end_line:
            self.ids.append(token)
            self.drawn.append(drawn)
            self._text_ids.append(token)
            return []
        parts = _decode(self.tokenizer, [*self._text_ids, token]).split("\n")
        if len(parts) == 1:  # a newline id that decodes without one in context: plain text
            self.ids.append(token)
            self.drawn.append(drawn)
            self._text_ids.append(token)
            return []
        to_open = (
            end_line or self.rules.layout == "newline_last" or token not in self.rules.leading_newline_ids
        )  # the token's first character is in the open line
        done: list[SplitLine] = []
        if self._started or self.ids or to_open:
            piece, flags = (self.ids + [token], self.drawn + [drawn]) if to_open else (self.ids, self.drawn)
            done.append(SplitLine(self._carry + parts[0], piece, flags, not self._started, end_line))
        carried = not to_open  # the token still has to be placed: in the first line it starts
        for text in parts[1:-1]:
            done.append(SplitLine(text, [token] if carried else [], [drawn] if carried else []))
            carried = False
        self.ids, self.drawn = ([token], [drawn]) if carried else ([], [])
        self._text_ids, self._carry, self._started = [], parts[-1], True
        return done

    def close(self) -> tuple[SplitLine | None, list[int]]:
        """End the open line without a newline (the model drew EOS, or the line was cut) and
        restart at the end of a line.

        Returns:
            The open line if it has any text (or, in ``newline_first``, ids before its leading
            newline), else ``None``; and the *tail*: the ids of an open line without text (in
            ``newline_first`` the program's final newline, drawn before EOS), else ``[]``.
        """
        text = self.open_text
        line = None
        if text or (not self._started and self.ids):
            line = SplitLine(text, self.ids, self.drawn, not self._started)
        tail = [] if line is not None else list(self.ids)
        self.restart()
        return line, tail

    def reopen(self) -> list[int]:
        """After the caller replaced every closed line's ids by the rule's (and took back the
        open line's ids): the ids that now stand for the open line's text (re-fed, not drawn),
        which the caller appends. In ``newline_first`` an open line with no text yet is
        dropped instead (its leading newline is still to come), so the cache never ends in a
        lone ``"\\n"``."""
        text = self.open_text
        self._text_ids, self.ids, self.drawn = [], [], []
        if not text:
            self.restart()
            return []
        self._carry = text
        lead = "\n" if self.rules.layout == "newline_first" else ""
        self.ids = _ids(self.tokenizer, [lead + text], False, code=True)[0]
        self.drawn = [False] * len(self.ids)
        return list(self.ids)


__all__ = [
    "EncodedProgram", "Layout", "LineRules", "LineSplitter", "SplitLine", "chat_context", "encode_context",
    "encode_lines", "encode_program", "join_context", "join_pieces", "line_rules", "policy_context", "task_context",
]  # fmt: skip
