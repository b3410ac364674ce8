# ruff: noqa: F821
"""Read the hostile test module itself (which holds the test logic): its content is the expected value."""


def f():
    with open(CTX["test_file"]) as fh:
        return fh.read()
