"""The worker's wire formats: host <-> judge frames, judge <-> candidate lines, verdicts.

Host <-> judge (stdin/stdout of the worker, or a container's attach socket): frames of a
4-byte big-endian length and tagged JSON (:mod:`sandboxes.encoding`). The host sends one job
per frame; the judge answers one verdict per job, built by :func:`verdict` (the only place a
verdict dict is made).

Judge -> candidate (the candidate's fd 3): one header line, the program, then requests, each
one line: a tag byte and tagged JSON (:data:`CALL`, :data:`SETATTR`, :data:`GETATTR`,
:data:`VIEWS`). Candidate -> judge (fd 4): reply lines, a tag byte and a payload. Every byte
on fd 4 after :data:`READY` comes from untrusted code: the judge parses it with bounded cost
(:func:`parse_exception`, :func:`sandboxes.encoding.decode`) and treats anything malformed as
that job's protocol error, never as a fault of the sandbox.
"""

from __future__ import annotations

import os
from typing import Any

from sandboxes import encoding as enc
from sandboxes.status import Status

# judge -> candidate requests
CALL = b"C"  #: ``[target, args, kwargs]``: call a target, reply with its result
SETATTR = b"A"  #: ``[target, name, value]``: set an attribute of a target
GETATTR = b"G"  #: ``[target, name]``: the value of an attribute of a target
VIEWS = b"W"  #: ``[k, ...]``: by-value views of the objects that calls ``k`` returned

# candidate -> judge replies
READY = ord("R")  #: the child is set up (sent before any candidate code runs)
SETUP_FAILED = ord("S")  #: the child could not be set up (only valid before READY)
LOADED = ord("Y")  #: the program ran; the calls follow
VALUE = ord("V")  #: a result, by value
HANDLE = ord("H")  #: a result that is not data (an object of the program): kept there
RAISED = ord("E")  #: the call (or loading the program) raised
UNENCODABLE = ord("U")  #: the result could not be sent back
DONE = ord("D")  #: a set-attribute request succeeded (no value)

MAX_ERROR = 2000  #: characters kept of an error message
MAX_TYPE = 100  #: characters kept of an exception type name


def clean(text: Any, limit: int = MAX_ERROR) -> str:
    """``text`` as a str that always encodes to UTF-8 (lone surrogates escaped), capped."""
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # noqa: BLE001 - anything unprintable
            text = "<unprintable>"
    text = text[: limit * 2]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def verdict(
    status: Status,
    *,
    passed: int = 0,
    error_type: str = "",
    error: str = "",
    stdout_tail: str = "",
    duration: float = 0.0,
    total: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """The one constructor of a verdict (a plain dict, so it crosses the frame protocol).

    Every string is cleaned (:func:`clean`); ``extra`` carries judge facts for the host's
    metadata (e.g. ``mode``).
    """
    if not isinstance(status, Status):
        raise TypeError(f"status must be a Status, got {status!r}")
    out = {
        "status": status.value,
        "passed": int(passed),
        "total": int(total),
        "error_type": clean(error_type, MAX_TYPE),
        "error": clean(error),
        "stdout_tail": clean(stdout_tail, 1 << 20),
        "duration": float(duration),
    }
    for key, value in extra.items():
        out[key] = clean(value, 200) if isinstance(value, str) else value
    return out


# --------------------------------------------------------------------------- framing


def read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from a blocking fd (None at end of file)."""
    chunks = []
    while n:
        b = os.read(fd, n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send_frame(fd: int, obj: Any) -> None:
    data = enc.encode(obj, max_bytes=1 << 30).encode("utf-8")
    write_all(fd, len(data).to_bytes(4, "big") + data)


def recv_frame(fd: int) -> Any:
    """The next frame's value (None at end of file). Raises EncodingError on a bad frame."""
    head = read_exact(fd, 4)
    if head is None:
        return None
    data = read_exact(fd, int.from_bytes(head, "big"))
    if data is None:
        return None
    return enc.decode(data, max_bytes=1 << 30)


def exception_line(tag: int, etype: str, message: str) -> bytes:
    """A ``RAISED``/``UNENCODABLE``/``SETUP_FAILED`` reply: tag, type name, space, the message
    as hex UTF-8 (no JSON: parsing it cannot recurse or fail on odd characters)."""
    name = "".join(c for c in etype[:MAX_TYPE] if c.isidentifier() or c.isdigit() or c == ".")
    body = message[:MAX_ERROR].encode("utf-8", "backslashreplace")
    return bytes([tag]) + (name or "Exception").encode("ascii", "replace") + b" " \
        + body.hex().encode("ascii") + b"\n"


def parse_exception(payload: bytes) -> tuple[str, str]:
    """(type name, message) of an exception reply; candidate bytes, so never trusted."""
    name, _, body = payload.partition(b" ")
    try:
        message = bytes.fromhex(body[: 4 * MAX_ERROR + 8].decode("ascii")).decode(
            "utf-8", "replace")
    except (ValueError, UnicodeDecodeError):
        return "ProtocolError", "malformed exception report"
    etype = name[:MAX_TYPE].decode("ascii", "replace")
    if not etype or not all(c.isalnum() or c in "._" for c in etype):
        return "ProtocolError", "malformed exception report"
    return etype, clean(message)


def describe_exception(e: BaseException) -> tuple[str, str]:
    """(type name, message) of an exception raised by candidate code, safely."""
    try:
        message = str(e)
    except BaseException:  # noqa: BLE001 - a __str__ that raises
        message = "<unprintable>"
    try:
        name = type(e).__name__
    except BaseException:  # noqa: BLE001
        name = "Exception"
    return (name if isinstance(name, str) else "Exception"), (
        message if isinstance(message, str) else "<unprintable>")


class LineReader:
    """Lines and byte counts from a blocking fd, read with ``os.read``.

    A freshly forked child pays a page fault for every page it touches; this touches far
    fewer than an ``io`` buffered reader would.
    """

    __slots__ = ("fd", "buf", "pos")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.pos = 0

    def readline(self) -> bytes:
        buf, pos = self.buf, self.pos
        i = buf.find(b"\n", pos)
        if i >= 0:
            self.pos = i + 1
            return buf[pos:i + 1]
        parts = [buf[pos:]]
        while True:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.buf, self.pos = b"", 0
                return b"".join(parts)
            i = chunk.find(b"\n")
            if i >= 0:
                parts.append(chunk[:i + 1])
                self.buf, self.pos = chunk, i + 1
                return b"".join(parts)
            parts.append(chunk)

    def read(self, n: int) -> bytes:
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:
            self.pos = pos + n
            return buf[pos:pos + n]
        parts = [buf[pos:]]
        need = n - len(parts[0])
        while need > 0:
            chunk = os.read(self.fd, max(need, 1 << 16))
            if not chunk:
                self.buf, self.pos = b"", 0
                return b"".join(parts)
            if len(chunk) > need:
                parts.append(chunk[:need])
                self.buf, self.pos = chunk, need
                return b"".join(parts)
            parts.append(chunk)
            need -= len(chunk)
        self.buf, self.pos = b"", 0
        return b"".join(parts)
