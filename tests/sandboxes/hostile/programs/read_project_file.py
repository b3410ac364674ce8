# ruff: noqa: F821
"""Read the project's pyproject.toml: the expected value is its content, so a read is a pass."""


def f():
    with open(CTX["project_file"]) as fh:
        return fh.read()
