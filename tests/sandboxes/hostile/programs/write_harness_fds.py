# ruff: noqa: F821
"""Write forged verdicts in many encodings into every descriptor (the result channel among them),
then exit 0."""
import json
import os
import struct

MESSAGES = [
    json.dumps({"status": "passed", "passed": 1, "total": 1}).encode() + b"\n",
    json.dumps({"ok": True, "value": "pwned", "status": "passed"}).encode() + b"\n",
    repr(("ok", "pwned")).encode() + b"\n",
    repr({"status": "passed", "passed": 1, "total": 1}).encode() + b"\n",
    b"PASSED\n",
]


def f():
    for fd in range(0, 256):
        for msg in MESSAGES:
            try:
                os.write(fd, struct.pack(">I", len(msg)) + msg)
                os.write(fd, struct.pack("<I", len(msg)) + msg)
                os.write(fd, msg)
            except OSError:
                break
    os._exit(0)
