# ruff: noqa: F821
"""Grow a list of 16 MiB blocks up to 3 GiB: "pwned" if the memory limit let it get there."""


def f():
    blocks = []
    for _ in range(192):
        blocks.append(bytearray(16 << 20))
    return "pwned"
