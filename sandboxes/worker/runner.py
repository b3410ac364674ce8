"""The candidate runner (``C``): runs the program and answers the judge's requests by value.

Everything here runs in the untrusted process, after the fork server set it up: nothing it
sends is trusted by the judge. It reads the job header and the program from fd 3, ``exec``s the
program, replies :data:`~sandboxes.worker.protocol.LOADED` (or the exception), then answers
requests in order, one reply line each on fd 4:

* ``CALL [target, attrs, args, kwargs]``: call ``target.attr1.attr2...`` (the target is a
  reference: ``{"g": name}`` a top-level name of the program, ``{"r": k}`` the result of
  request ``k``); reply the result by value (``V``), or, when it is not data (an object of a
  class the program defines, a module, a function), ``H`` and keep it for later references;
* ``SETATTR [target, attrs, name, value]`` / ``GETATTR [target, attrs]``;
* ``VIEWS [k, ...]``: by-value views of the objects requests ``k`` returned (their class name
  and instance attributes, recursively), for comparisons in the judge.

Every request gets a number (``VIEWS`` excepted), whether or not it succeeds.
"""

from __future__ import annotations

import builtins
import resource
import sys
from typing import Any

from sandboxes import encoding as enc
from sandboxes.worker import protocol as proto

MEM_MSG = proto.exception_line(proto.RAISED, "MemoryError", "")  # made before any fork
#: the job's program globals and kept results (one job per process)
_STATE: dict[str, Any] = {"g": {}, "results": {}}


def _resolve(tag: str, value: Any) -> Any:
    """A reference in a request: ``{"g": name}`` or ``{"r": k}`` / ``{"r": [k, path]}``."""
    if tag == "r":
        path: Any = []
        if type(value) is list and len(value) == 2:
            value, path = value
        results = _STATE["results"]
        if type(value) is not int or value not in results or type(path) is not list:
            raise LookupError(f"no result #{value!r} to refer to")
        obj = results[value]
        for step in path:
            kind, key = step
            obj = getattr(obj, str(key)) if kind == "a" else obj[key]
        return obj
    g = _STATE["g"]
    if type(value) is str and value in g:
        return g[value]
    raise NameError(f"name {value!r} is not defined by the program")


# built before any fork: a decoder made in the child costs it dozens of page faults
_decode = enc.make_decoder(refs=_resolve)


class _NotData(Exception):
    """A result that has no by-value encoding: it becomes a handle."""


def _not_data(x: Any) -> Any:
    raise _NotData


def _view_of(seen: set[int]) -> Any:
    """The ``objects`` hook of the view encoder: (class name, instance attributes)."""

    def view(x: Any) -> tuple[str, dict[str, Any] | None]:
        t = type(x)
        if isinstance(x, type):
            return f"class {getattr(x, '__qualname__', '?')}", None
        if t.__name__ in ("module", "function", "builtin_function_or_method", "method"):
            return f"{t.__name__} {getattr(x, '__qualname__', getattr(x, '__name__', '?'))}", None
        name = getattr(t, "__qualname__", "?")
        if id(x) in seen:
            return name, None
        seen.add(id(x))
        attrs: dict[str, Any] = {}
        d = getattr(x, "__dict__", None)
        if isinstance(d, dict):
            attrs.update((k, v) for k, v in d.items() if isinstance(k, str))
        for klass in t.__mro__:
            for slot in getattr(klass, "__slots__", ()) if isinstance(
                    getattr(klass, "__slots__", ()), (tuple, list)) else ():
                if isinstance(slot, str) and slot not in attrs and hasattr(x, slot):
                    attrs[slot] = getattr(x, slot)
        return name, attrs

    return view


def serve(max_result: int, base_vsize: int) -> None:
    """Serve one job (returns when the judge closes fd 3 or the job cannot go on)."""
    mem_msg = MEM_MSG
    rf = proto.LineReader(3)

    def send(data: bytes) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        proto.write_all(4, data)

    def raised(e: BaseException, tag: int = proto.RAISED) -> bytes:
        etype, msg = proto.describe_exception(e)
        return proto.exception_line(tag, etype, msg)

    line = rf.readline()  # b"<cpu s> <memory MiB> <entry bytes> <program bytes>\n", then both
    if not line:
        return
    try:
        cpu, memory_mb, n_entry, n_program = [int(x) for x in line.split()]
        body = rf.read(n_entry + n_program)
        entry = body[:n_entry].decode("utf-8", "surrogatepass")
        program = body[n_entry:].decode("utf-8", "surrogatepass")
        del body
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if memory_mb > 0:
            lim = base_vsize + (memory_mb << 20)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        g: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
        code = compile(program, "<candidate>", "exec")
        exec(code, g)
        fn = g.get(entry)
        if fn is None:
            raise NameError(f"the program does not define {entry!r}")
        if not callable(fn):
            raise TypeError(f"{entry!r} is not callable")
        del code, program
    except MemoryError:
        send(mem_msg)
        return
    except BaseException as e:  # noqa: BLE001 - SystemExit included: reported, never a pass
        send(raised(e))
        return
    send(b"Y\n")
    results: dict[int, Any] = {}
    _STATE["g"], _STATE["results"] = g, results
    decode = _decode

    def follow(obj: Any, attrs: Any) -> Any:
        if type(attrs) is not list:
            raise TypeError("malformed attribute path")
        for name in attrs:
            obj = getattr(obj, str(name))
        return obj

    def reply_for(k: int, result: Any, keep: bool) -> bytes:
        if keep:
            results[k] = result
        try:
            return b"V" + enc.encode(result, max_bytes=max_result, objects=_not_data).encode(
                "utf-8", "surrogatepass") + b"\n"
        except _NotData:
            results[k] = result  # an object: the judge may ask for its view, or refer to it
            name = getattr(type(result), "__qualname__", "object")
            return b"H" + str(name)[:100].encode("utf-8", "backslashreplace") + b"\n"

    k = 0
    while True:
        line = rf.readline()
        if not line:
            return
        tag = line[:1]
        keep = tag.islower()
        tag = tag.upper()
        if tag == proto.VIEWS:
            try:
                ids = enc.decode(line[1:])
                seen: set[int] = set()
                views = [results.get(i) if type(i) is int else None for i in ids]
                out = b"V" + enc.encode(views, max_bytes=max_result,
                                        objects=_view_of(seen)).encode(
                    "utf-8", "surrogatepass") + b"\n"
            except MemoryError:
                out = mem_msg
            except BaseException as e:  # noqa: BLE001
                out = raised(e, proto.UNENCODABLE)
            send(out)
            continue
        this, k = k, k + 1
        try:
            req = decode(line[1:], max_bytes=1 << 30)
            if tag == proto.CALL:
                target, attrs, args, kwargs = req
                result = follow(target, attrs)(*args, **kwargs)
            elif tag == proto.GETATTR:
                target, attrs = req
                result = follow(target, attrs)
            elif tag == proto.SETATTR:
                target, attrs, name, value = req
                setattr(follow(target, attrs), str(name), value)
                results[this] = None
                send(b"D\n")
                continue
            else:
                raise ValueError(f"unknown request {tag!r}")
        except MemoryError:
            send(mem_msg)
            continue
        except BaseException as e:  # noqa: BLE001
            send(raised(e))
            continue
        try:
            out = reply_for(this, result, keep)
        except MemoryError:
            out = mem_msg
        except BaseException as e:  # noqa: BLE001
            out = raised(e, proto.UNENCODABLE)
        send(out)
