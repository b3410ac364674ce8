"""How a check's calls on the program travel: stand-ins, proxies, and the call log.

The trusted check never touches the candidate's objects. What it sees instead:

* :class:`_Unknown` (prediction run only): the stand-in for a correct program's answer;
* :class:`_Ref`: a top-level name of the program (``Node``, ``helper``, a module alias) or an
  attribute path below it: calls, reads and writes become requests to the candidate;
* :class:`_Remote`: a result that is not data; it stays in the candidate, and the judge
  compares it through its by-value view (class name and attributes, never its ``__eq__``).

Every request goes through :class:`_Ops`, which records it (prediction), matches it against
the prediction and hands out the collected answer (replay), or sends it and waits (live).
"""

from __future__ import annotations

import json
from typing import Any

from sandboxes import encoding as enc
from sandboxes.worker import protocol as proto

_MAX_PREDICTED = 4096  # calls a prediction may hold


class WorkerBroken(Exception):
    """A fork server died or cannot be reached: the worker must be replaced."""


class Fault(BaseException):
    """The candidate can no longer answer: timeout, death, flood, bad protocol."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class CandidateError(BaseException):
    """The candidate raised; BaseException so ``except Exception`` in check code passes it."""

    def __init__(self, etype: str, msg: str) -> None:
        super().__init__(f"{etype}: {msg}")
        self.etype = etype
        self.msg = msg


class Diverged(BaseException):
    """The real check made a call the prediction did not have."""


class StopRecording(BaseException):
    """Ends the prediction run of a check (what it recorded so far is incomplete)."""


# --------------------------------------------------------------------------- stand-ins


class _Unknown:
    """Stand-in result in the prediction run: behaves like a correct program's answer.

    Comparisons hold, truth tests are true, arithmetic and indexing give more stand-ins,
    ``float()``/``int()``/``len()`` give 0. A stand-in that is the result of call ``k`` (or an
    attribute/item path into it) can be passed back to the program as a reference.
    """

    __slots__ = ("_ops", "_origin", "_path")

    def __init__(self, ops: Any, origin: int | None, path: tuple[Any, ...] = ()) -> None:
        object.__setattr__(self, "_ops", ops)
        object.__setattr__(self, "_origin", origin)
        object.__setattr__(self, "_path", path)

    def _derived(self, *_: Any, **__: Any) -> _Unknown:
        return _Unknown(self._ops, None)

    def _true(self, *_: Any) -> bool:
        return True

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = _true  # type: ignore[assignment]
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _derived
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _derived
    __pow__ = __rpow__ = __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = _derived
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = __matmul__ = __rmatmul__ = _derived
    __neg__ = __pos__ = __abs__ = __invert__ = __round__ = __trunc__ = __floor__ = _derived
    __ceil__ = __divmod__ = __rdivmod__ = _derived

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter(())

    def __float__(self) -> float:
        return 0.0

    def __int__(self) -> int:
        return 0

    __index__ = __int__

    def __complex__(self) -> complex:
        return 0j

    def __str__(self) -> str:
        return ""

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return ""

    def __hash__(self) -> int:
        return id(self)

    def __getitem__(self, key: Any) -> _Unknown:
        if self._origin is not None and type(key) in (int, str):
            return _Unknown(self._ops, self._origin, self._path + (("i", key),))
        return _Unknown(self._ops, None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._origin is None:
            return _Unknown(self._ops, None)
        return _UnknownAttr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._ops.setattr(self._ref_tree(), [], name, value)

    def _ref_tree(self) -> Any:
        if self._origin is None:
            raise self._ops._remember(StopRecording())
        return {"r": [self._origin, list(map(list, self._path))] if self._path else self._origin}


class _UnknownAttr(_Unknown):
    """``result.name`` in the prediction run: a method to call, or a value to compare."""

    __slots__ = ("_base", "_name")

    def __init__(self, base: _Unknown, name: str) -> None:
        super().__init__(base._ops, base._origin, base._path + (("a", name),))
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ops.call(self._base._ref_tree(), [self._name], args, kwargs)


# --------------------------------------------------------------------------- proxies


def _canon(x: Any) -> Any:
    """A value with every handle replaced by its by-value view (for comparisons)."""
    t = type(x)
    if t is _Remote:
        return _canon(x._view())
    if t is _Ref:
        return _canon(x._value())
    if t is list or t is tuple:
        if any(type(v) in (_Remote, _Ref, list, tuple, dict) for v in x):
            return t(_canon(v) for v in x)
        return x
    if t is dict:
        return {k: _canon(v) for k, v in x.items()}
    return x


class _Handle:
    """What the judge's two kinds of handle (:class:`_Ref`, :class:`_Remote`) share: equality
    by value (:func:`_canon`), identity hashing, and ``len``/``iter``/indexing/truth on the
    by-value form that ``_value()`` returns."""

    __slots__ = ()

    def _value(self) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return _canon(self) == _canon(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return id(self)

    def __len__(self) -> int:
        return len(self._value())

    def __iter__(self) -> Any:
        return iter(self._value())

    def __getitem__(self, key: Any) -> Any:
        return self._value()[key]

    def __bool__(self) -> bool:
        return bool(self._value())


class _Ref(_Handle):
    """A top-level name of the program (``Node``, ``helper``, a module alias), or an attribute
    path below it or below a result: calls, attribute reads and writes run in the candidate,
    results come back by value (or as handles)."""

    __slots__ = ("_ops", "_root", "_attrs")

    def __init__(self, ops: Any, root: Any, attrs: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_ops", ops)
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_attrs", attrs)

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self._attrs[-1] if self._attrs else str(self._root.get("g", "?"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ops.call(self._root, list(self._attrs), args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Ref(self._ops, self._root, self._attrs + (name,))

    def __setattr__(self, name: str, value: Any) -> None:
        self._ops.setattr(self._root, list(self._attrs), name, value)

    def _value(self) -> Any:
        return self._ops.getattr(self._root, list(self._attrs))

    def __instancecheck__(self, obj: Any) -> bool:
        view = _canon(obj)
        return type(view) is enc.RemoteObject and view.type_name.rsplit(".", 1)[-1] == self.__name__

    def __repr__(self) -> str:
        return f"<program name {'.'.join([str(self._root.get('g', '?')), *self._attrs])}>"

    def __contains__(self, item: Any) -> bool:
        return item in self._value()

    def __lt__(self, other: Any) -> Any:
        return self._value() < _canon(other)

    def __gt__(self, other: Any) -> Any:
        return self._value() > _canon(other)

    def __le__(self, other: Any) -> Any:
        return self._value() <= _canon(other)

    def __ge__(self, other: Any) -> Any:
        return self._value() >= _canon(other)

    def __int__(self) -> int:
        return int(self._value())

    def __float__(self) -> float:
        return float(self._value())

    def __index__(self) -> int:
        return int(self._value())


class _Remote(_Handle):
    """A result that is not data (or an object reached from one through attributes): it stays
    in the candidate; the judge reads it through its by-value view, and calls, attribute
    writes and references go to the candidate."""

    __slots__ = ("_ops", "_k", "_path", "_type")

    def __init__(self, ops: Any, k: int, type_name: str, path: tuple[Any, ...] = ()) -> None:
        object.__setattr__(self, "_ops", ops)
        object.__setattr__(self, "_k", k)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_type", type_name)

    def _tree(self) -> Any:
        return {"r": [self._k, [list(step) for step in self._path]] if self._path else self._k}

    def _view(self) -> Any:
        view = self._ops.view(self._k)
        for _, name in self._path:
            if type(view) is not enc.RemoteObject or view.attrs is None:
                raise AttributeError(name)
            view = view.attrs[name]
        return view

    _value = _view

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ops.call(self._tree(), [], args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        view = self._view()
        if type(view) is enc.RemoteObject and view.attrs is not None and name in view.attrs:
            value = view.attrs[name]
            if type(value) is enc.RemoteObject:  # another program object: a handle too
                return _Remote(self._ops, self._k, value.type_name, self._path + (("a", name),))
            return value
        return _Ref(self._ops, self._tree(), (name,))

    def __setattr__(self, name: str, value: Any) -> None:
        self._ops.setattr(self._tree(), [], name, value)

    def __repr__(self) -> str:
        try:
            return enc.render(self._view())
        except BaseException:  # noqa: BLE001 - no view: the type is all we know
            return f"<{self._type} object>"

    def __contains__(self, item: Any) -> bool:
        return _canon(item) in self._view()


def _ref_of(x: Any) -> Any:
    """``refs`` hook of the request encoder: the tree that points the candidate at ``x``."""
    t = type(x)
    if t is _Unknown or t is _UnknownAttr:
        return x._ref_tree()
    if t is _Remote:
        return x._tree()
    if t is _Ref:
        if x._attrs:
            raise enc.EncodingError("an attribute of a program name cannot be an argument")
        return x._root
    if t is enc.RemoteObject and x.ref is not None:
        return {"r": x.ref}
    return None


# --------------------------------------------------------------------------- calls


class _Ops:
    """The calls a check makes on the program, in one of three modes.

    * ``record``: nothing reaches the candidate; each call is appended to ``requests`` and a
      stand-in comes back;
    * ``replay``: each call must be the next predicted one (a reference to a by-value result
      matches a value equal to it); its answer comes from the collected answers;
    * ``live``: calls beyond ``requests`` are sent now and their answers awaited.
    """

    def __init__(self, mode: str, ch: Any = None,
                 requests: list[tuple[bytes, Any]] | None = None,
                 answers: list[tuple[int, bytes]] | None = None, max_result: int = 0) -> None:
        self.mode = mode
        self.ch = ch
        self.requests: list[tuple[bytes, Any]] = list(requests or [])
        self.answers = answers if answers is not None else []
        self.max_result = max_result
        self.pos = 0
        self.values: dict[int, Any] = {}
        self.trees: dict[int, Any] = {}
        self.views: dict[int, Any] = {}
        self.errors: list[CandidateError] = []  # candidate errors the check saw (and swallowed)
        self.fault: Fault | None = None  # why answers stopped (collection)
        self.raised: BaseException | None = None  # a fault/divergence the check may swallow

    # -- building requests ------------------------------------------------------------
    def _data(self, value: Any) -> Any:
        """The tagged tree of an argument (proxies become references)."""
        try:
            return enc.to_jsonable(value, refs=_ref_of)
        except enc.EncodingError as e:
            if self.mode == "record":
                raise self._remember(StopRecording()) from None
            if self.ch is not None:
                raise self.ch.fail("harness", f"UnencodableArgument: {e}") from None
            raise Fault("harness", f"UnencodableArgument: {e}") from None

    def call(self, root: Any, attrs: list[str], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        return self._op(proto.CALL, [root, attrs, self._data(list(args)), self._data(kwargs)])

    def setattr(self, root: Any, attrs: list[str], name: str, value: Any) -> None:
        self._op(proto.SETATTR, [root, attrs, str(name), self._data(value)])

    def getattr(self, root: Any, attrs: list[str]) -> Any:
        return self._op(proto.GETATTR, [root, attrs])

    def _op(self, tag: bytes, tree: Any) -> Any:
        if self.mode == "record":
            if len(self.requests) >= _MAX_PREDICTED:
                raise self._remember(StopRecording())
            self.requests.append((tag, tree))
            return None if tag == proto.SETATTR else _Unknown(self, len(self.requests) - 1)
        k = self._next(tag, tree)
        return self._answer(k, tag)

    def _next(self, tag: bytes, tree: Any) -> int:
        while self.pos < len(self.requests):
            ptag, ptree = self.requests[self.pos]
            if ptag == tag and self._match(ptree, tree):
                self.pos += 1
                return self.pos - 1
            if self._skippable(ptree):
                self.pos += 1
                continue
            raise self._remember(Diverged())
        if self.mode != "live" or self.ch is None:
            raise self._remember(Diverged())
        self.requests.append((tag, tree))
        self.pos += 1
        self.ch.send(request_bytes(tag, tree, keep=True))
        return self.pos - 1

    def _skippable(self, ptree: Any) -> bool:
        """A predicted call on a result that came back by value: the real check did it on
        its own copy (``result.sort()``), so it is not one of its calls to the program."""
        root = ptree[0]
        if type(root) is not dict or "r" not in root:
            return False
        k = root["r"] if type(root["r"]) is int else root["r"][0]
        return self._kind(k) == proto.VALUE

    def _kind(self, k: int) -> int | None:
        if k < len(self.answers):
            return self.answers[k][0]
        return None

    def _answer_tree(self, k: int) -> Any:
        if k not in self.trees:
            try:
                self.trees[k] = json.loads(self.answers[k][1])
            except (ValueError, RecursionError):
                self.trees[k] = _NO_TREE
        return self.trees[k]

    def _match(self, p: Any, r: Any) -> bool:
        """Predicted tree ``p`` equals real tree ``r``, a reference in ``p`` to a by-value
        result matching that result's value in ``r``."""
        if p == r:
            return True
        if type(p) is dict and len(p) == 1 and "r" in p:
            ref = p["r"]
            k, path = (ref, []) if type(ref) is int else (ref[0], ref[1])
            if self._kind(k) != proto.VALUE:
                return False
            sub = _tree_at(self._answer_tree(k), path)
            return sub is not _NO_TREE and sub == r
        if type(p) is list and type(r) is list and len(p) == len(r):
            return all(self._match(a, b) for a, b in zip(p, r))
        if type(p) is dict and type(r) is dict and p.keys() == r.keys():
            return all(self._match(p[key], r[key]) for key in p)
        return False

    def _remember(self, e: BaseException) -> BaseException:
        """The first fault or divergence: raised again after the check, should it swallow
        this one with a bare ``except``."""
        if self.raised is None:
            self.raised = e
        return e

    def _reply(self, k: int) -> tuple[int, bytes]:
        while k >= len(self.answers):
            if self.mode != "live" or self.ch is None:
                raise self._remember(self.fault or Fault("eof"))
            try:
                self.answers.append(self.ch.recv())
            except Fault as f:
                raise self._remember(f) from None
        return self.answers[k]

    def _answer(self, k: int, tag: bytes) -> Any:
        kind, payload = self._reply(k)
        if kind == proto.VALUE and tag != proto.SETATTR:
            if k not in self.values:
                try:
                    self.values[k] = enc.decode(payload, max_bytes=self.max_result)
                except enc.EncodingError as e:
                    self._raise(CandidateError("BadResult", str(e)))
            return self.values[k]
        if kind == proto.HANDLE and tag != proto.SETATTR:
            return _Remote(self, k, payload[:100].decode("utf-8", "replace"))
        if kind == proto.DONE and tag == proto.SETATTR:
            return None
        if kind in (proto.RAISED, proto.UNENCODABLE):
            etype, msg = proto.parse_exception(payload)
            if kind == proto.UNENCODABLE:
                etype, msg = "UnencodableResult", f"{etype}: {msg}"
            self._raise(CandidateError(etype, msg))
        fault = Fault("protocol", f"unexpected reply {chr(kind)!r} to a request")
        if self.ch is not None:
            self.ch.fault = self.ch.fault or fault
        raise self._remember(fault)

    def _raise(self, err: CandidateError) -> None:
        self.errors.append(err)
        raise err

    def view(self, k: int) -> Any:
        if k not in self.views:
            if self.mode == "live" and self.ch is not None:
                self.fetch_views([k])
            if k not in self.views:
                self._raise(CandidateError("UnviewableResult", "no view of a returned object"))
        return self.views[k]

    def handles(self) -> list[int]:
        return [k for k, (kind, _) in enumerate(self.answers) if kind == proto.HANDLE]

    def fetch_views(self, ks: list[int]) -> None:
        """Ask the (live) candidate for by-value views of results ``ks``."""
        assert self.ch is not None
        self.ch.send(proto.VIEWS + json.dumps(ks).encode() + b"\n")  # views: never kept
        kind, payload = self.ch.recv()
        self.store_views(ks, kind, payload)

    def store_views(self, ks: list[int], kind: int, payload: bytes) -> None:
        if kind != proto.VALUE:
            return
        try:
            views = enc.decode(payload, max_bytes=self.max_result, objects=True)
        except enc.EncodingError:
            return
        if type(views) is not list or len(views) != len(ks):
            return
        for k, v in zip(ks, views):
            _set_refs(v, k)
            self.views[k] = v


_NO_TREE = object()


def _tree_at(tree: Any, path: list[Any]) -> Any:
    for step in path:
        if type(step) is not list or len(step) != 2 or step[0] != "i":
            return _NO_TREE
        if type(tree) is dict and "t" in tree:
            tree = tree["t"]
        try:
            tree = tree[step[1]]
        except (LookupError, TypeError):
            return _NO_TREE
    return tree


def _set_refs(view: Any, k: int) -> None:
    """Mark each program object in result ``k``'s view with the path that reaches it."""
    stack: list[tuple[Any, list[list[Any]]]] = [(view, [])]
    seen = 0
    while stack and seen < 100000:
        seen += 1
        v, path = stack.pop()
        t = type(v)
        if t is enc.RemoteObject:
            if path:
                v.ref = [k, path]
            if v.attrs is not None:
                stack.extend((x, path + [["a", name]]) for name, x in v.attrs.items()
                             if isinstance(name, str))
        elif t is list or t is tuple:
            stack.extend((x, path + [["i", i]]) for i, x in enumerate(v))


def request_bytes(tag: bytes, tree: Any, keep: bool = True) -> bytes:
    """One request line. ``keep``: the candidate keeps the result for later references (its
    lowercase tag); results nothing refers to are dropped at once (fewer pages touched)."""
    return (tag.lower() if keep else tag) + json.dumps(
        tree, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def referenced(requests: list[tuple[bytes, Any]]) -> set[int]:
    """Indices of the results that later requests refer to (``{"r": k}``)."""
    out: set[int] = set()
    stack = [tree for _, tree in requests]
    while stack:
        t = stack.pop()
        if type(t) is list:
            stack.extend(t)
        elif type(t) is dict:
            if len(t) == 1 and "r" in t:
                ref = t["r"]
                out.add(ref if type(ref) is int else ref[0])
            else:
                stack.extend(t.values())
    return out


