# ruff: noqa: F821
"""Write invalid UTF-8, NULs, ANSI escapes and terminal control codes to stdout/stderr, then
return a wrong value: the harness must decode the tail safely and still say "failed"."""
import os


def f():
    junk = b"\xff\xfe\x00\x00\x1b[2J\x1b]0;PASSED\x07\r\x1b[1A\xc3\x28PASSED\n" * 64
    os.write(1, junk)
    os.write(2, junk)
    return "definitely-not-the-answer"
