"""``CodeText``: a Gymnasium ``Text`` space for code that holds any Unicode text.

Gymnasium's ``Text`` needs an explicit charset; the whole of Unicode (1.1 M code points) is
far too large for one, and a narrower set rejects real prompts (an emoji, CJK text, a
typographic quote). ``CodeText`` keeps ``Text``'s interface: :meth:`sample` draws from a
printable charset (:data:`codegym.envs.charset.LINE_CHARSET` / ``TEXT_CHARSET``), while
:meth:`contains` accepts every string of the right length made of characters that can be
written to a UTF-8 program file, i.e. everything except

* lone surrogates (U+D800..U+DFFF: not encodable) and NUL (Python refuses it in source);
* for a single line (``multiline=False``): the line breaks ``\\n`` and ``\\r``.

Gymnasium's shared-memory vector buffers cannot carry text (the parent reads a ``Text``
buffer once, as fixed strings, so every later observation would read back stale), so
creating one for a ``CodeText`` raises ``ValueError`` with the fix
(``vector_kwargs={"shared_memory": False}``) instead of silently returning zeros.
"""

from __future__ import annotations

import re
from typing import Any

from gymnasium import spaces
from gymnasium.vector.utils import create_shared_memory

from codegym.envs.charset import LINE_CHARSET, TEXT_CHARSET

_BAD_LINE = re.compile("[\x00\n\r\ud800-\udfff]")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def first_bad_char(text: str, multiline: bool) -> str | None:
    """The first character of ``text`` that a code line (``multiline=False``) or a code text
    cannot hold, or ``None``."""
    m = (_BAD_TEXT if multiline else _BAD_LINE).search(text)
    return None if m is None else m.group()


class CodeText(spaces.Text):
    """Any Unicode text of ``min_length..max_length`` characters (see the module docstring).

    Args:
        max_length: Longest string.
        min_length: Shortest string.
        multiline: Whether line breaks are allowed (observations) or not (one line of code).
        seed: Seed of :meth:`sample`.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, multiline: bool = False, seed: Any = None) -> None:
        super().__init__(
            max_length, min_length=min_length, charset=TEXT_CHARSET if multiline else LINE_CHARSET, seed=seed
        )
        self.multiline = bool(multiline)

    def contains(self, x: Any) -> bool:
        """True for a ``str`` of allowed length without a forbidden character."""
        return (
            isinstance(x, str)
            and self.min_length <= len(x) <= self.max_length
            and first_bad_char(x, self.multiline) is None
        )

    def __repr__(self) -> str:
        return f"CodeText({self.min_length}, {self.max_length}, multiline={self.multiline})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, CodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
            and self.multiline == other.multiline
        )


@create_shared_memory.register(CodeText)
def _no_shared_memory(space: CodeText, n: int = 1, ctx: Any = None) -> Any:
    raise ValueError(
        "CodePRM observations are text, which Gymnasium's shared-memory buffers cannot carry "
        "(every observation after the first would read back stale). Make async vector envs "
        "with gym.make_vec(..., vectorization_mode='async', "
        "vector_kwargs={'shared_memory': False}), or use vectorization_mode='sync'"
    )


__all__ = ["CodeText", "first_bad_char"]
