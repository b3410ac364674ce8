# ruff: noqa: F821
"""Write one ever-growing file in the work dir (capped at 4 GiB): "pwned" if no file-size limit."""


def f():
    chunk = b"\0" * (1 << 20)
    with open("big.bin", "wb") as fh:
        for _ in range(4096):
            fh.write(chunk)
    return "pwned"
