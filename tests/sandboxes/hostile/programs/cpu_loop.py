# ruff: noqa: F821
"""A pure-Python CPU loop inside the entry point (threads/SIGALRM alone cannot stop it)."""


def f():
    x = 0
    while True:
        x += 1
