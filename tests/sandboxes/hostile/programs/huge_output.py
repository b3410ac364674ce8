# ruff: noqa: F821
"""Flood stdout and stderr (Python-level and raw fd writes) without end."""
import os
import sys


def f():
    chunk = "A" * 65536
    while True:
        sys.stdout.write(chunk)
        sys.stderr.write(chunk)
        try:
            os.write(1, chunk.encode())
            os.write(2, chunk.encode())
        except OSError:
            pass
