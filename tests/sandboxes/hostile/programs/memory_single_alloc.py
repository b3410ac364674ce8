# ruff: noqa: F821
"""One enormous allocation (1 TiB): must fail with MemoryError, never take the host down."""


def f():
    block = bytearray(1 << 40)
    return len(block)
