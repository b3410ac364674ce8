# ruff: noqa: F821
"""A CPU loop at import time, before the entry point is even defined."""
x = 0
while True:
    x += 1
