# ruff: noqa: F821
"""Read whatever is pending on every inherited descriptor (stdin, the job channel, ...) looking for
the expected value; return it if found."""
import os
import re

PATTERN = re.compile(rb"secret-[0-9a-f]{32}")


def f():
    for fd in range(0, 256):
        try:
            os.set_blocking(fd, False)
            data = os.read(fd, 1 << 20)
        except OSError:
            continue
        found = PATTERN.search(data or b"")
        if found:
            return found.group().decode()
    return None
