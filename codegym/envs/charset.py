"""The explicit character set of the env's ``Text`` spaces.

Gymnasium's default ``Text`` charset is alphanumeric only and rejects code, so codegym spaces
use this explicit set: printable ASCII plus tab, and the Unicode blocks that real task files
use (Latin-1, Greek, general punctuation, arrows, mathematical operators, dingbats). Observations also
allow newlines; actions (single lines) do not. Pass ``charset=`` to the env to widen it.
"""

from __future__ import annotations

import string

from codegym.constants import SUBMIT

_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x00A0, 0x00FF),  # Latin-1 supplement
    (0x0370, 0x03FF),  # Greek
    (0x2010, 0x205E),  # general punctuation
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # mathematical operators
    (0x2700, 0x27BF),  # dingbats (HumanEval uses ➞)
)

_ASCII = "".join(c for c in string.printable if c not in "\n\r\x0b\x0c")  # incl. space, tab
_UNICODE = "".join(chr(c) for lo, hi in _BLOCKS for c in range(lo, hi + 1) if chr(c).isprintable())

#: Characters allowed in one line of code (an action), plus the SUBMIT sentinel (which may
#: also appear inside a line: only the exact one-character action means submit).
LINE_CHARSET: str = _ASCII + _UNICODE + SUBMIT
#: Characters allowed in observations (prompt, code so far): a line's characters + line ends.
TEXT_CHARSET: str = LINE_CHARSET + "\n\r\x0b\x0c"
