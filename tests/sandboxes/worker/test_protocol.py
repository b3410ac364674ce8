"""The candidate runner's fd reader (``sandboxes.worker.protocol.LineReader``) against a real pipe."""

from __future__ import annotations

import os
import threading

from sandboxes.worker.protocol import LineReader


def _feed(data: bytes) -> int:
    """A pipe whose write end a thread fills with ``data`` in uneven pieces, then closes."""
    r, w = os.pipe()

    def writer() -> None:
        view, step = memoryview(data), 1
        while view:
            n = os.write(w, view[:step])
            view = view[n:]
            step = step * 7 % 100_003 + 1  # pieces of every size, across read boundaries
        os.close(w)

    threading.Thread(target=writer, daemon=True).start()
    return r


def test_lines_and_counted_bytes_round_trip_across_chunk_boundaries() -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: spans several os.read chunks
    long_line = b"x" * 200_000 + b"\n"
    data = b"3 0 1 4\n" + b"fabc" + b"first\n" + long_line + big + b"tail-no-newline"
    r = _feed(data)
    try:
        rd = LineReader(r)
        assert rd.readline() == b"3 0 1 4\n"
        assert rd.read(4) == b"fabc"
        assert rd.readline() == b"first\n"
        assert rd.readline() == long_line
        assert rd.read(len(big)) == big
        assert rd.readline() == b"tail-no-newline"  # EOF ends the last line
        assert rd.readline() == b""
        assert rd.read(10) == b""
    finally:
        os.close(r)


def test_read_stops_short_at_eof() -> None:
    r = _feed(b"abc")
    try:
        assert LineReader(r).read(10) == b"abc"
    finally:
        os.close(r)


def test_the_verdict_constructor_needs_a_status_and_cleans_strings() -> None:
    import pytest

    from sandboxes.status import Status
    from sandboxes.worker import protocol as proto

    v = proto.verdict(Status.ERROR, error_type="Val\udcffue", error="x\ud800" * 5000,
                      stdout_tail="\udfff", mode="collected")
    assert v["status"] == "error" and v["mode"] == "collected"
    for key in ("error_type", "error", "stdout_tail"):
        v[key].encode("utf-8")  # never a lone surrogate
    assert len(v["error"]) <= proto.MAX_ERROR
    with pytest.raises(TypeError, match="Status"):
        proto.verdict("passed")  # type: ignore[arg-type]


def test_exception_lines_round_trip_and_junk_is_a_protocol_error() -> None:
    from sandboxes.worker import protocol as proto

    line = proto.exception_line(proto.RAISED, "ValueError", "bad\nvalue \ud800")
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line[0] == proto.RAISED
    etype, msg = proto.parse_exception(line[1:-1])
    assert etype == "ValueError" and msg.startswith("bad\nvalue ")
    assert proto.parse_exception(b"[[[[" * 1000) == ("ProtocolError", "malformed exception report")
    assert proto.parse_exception(b"Name zz")[0] == "ProtocolError"
