"""How a check's calls on the program travel: stand-ins, proxies, and the call log.

The trusted check never touches the candidate's objects. What it sees instead:

* :class:`_Unknown` (prediction run only): the stand-in for a correct program's answer;
* :class:`_Ref`: a top-level name of the program (``Node``, ``helper``, a module alias) or an
  attribute path below it: calls, reads and writes become requests to the candidate;
* :class:`_Remote`: a result that is not data; it stays in the candidate, and the judge
  compares it through its by-value view (class name and attributes, never its ``__eq__``).

Every request goes through :class:`_Ops`, which records it (prediction), or matches it against
the prediction and hands out the collected answer (replay). There is no third mode: the
candidate only ever receives the predicted calls, all at once, and is dead before any answer is
judged; a real check that makes a call the prediction did not have raises :class:`Diverged`
and is scored as failed. What the judge decodes is charged to the job's :class:`Budget`
before it is decoded.
"""

from __future__ import annotations

import json
from typing import Any

from sandboxes import encoding as enc
from sandboxes.worker import protocol as proto

_MAX_PREDICTED = 4096  # calls a prediction may hold


class WorkerBroken(Exception):
    """A fork server died or cannot be reached: the worker must be replaced (the worker's
    loop ends on it; see :func:`sandboxes.worker.main.serve`)."""


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

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class NotRecorded(BaseException):
    """An assert message needs an answer the judge does not hold (it is not evaluated)."""


class Budget:
    """What the judge may spend on one job's answers, charged before it is spent.

    ``held``: the raw reply bytes the judge keeps until the candidate is dead; ``kept``: an
    upper estimate of the decoded values it keeps (:func:`sandboxes.encoding.cost_bound`).
    A decode is refused when ``held + kept`` plus its own estimate would pass ``limit``
    bytes, or when the job's values would pass ``limit // 192`` objects; either way the job
    ends as a ``JudgeBudget`` error, never as a judge that grew.
    """

    __slots__ = ("limit", "held", "kept", "objects")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.kept = 0
        self.objects = 0

    def hold(self, n: int) -> Fault | None:
        """Charge ``n`` raw reply bytes; the fault to raise when they are over budget."""
        self.held += n
        if self.held > self.limit:
            return Fault("budget", f"the program's replies passed the judge's budget of "
                                   f"{self.limit >> 20} MiB for one job")
        return None

    def decode(self, payload: bytes, keep: bool, **kw: Any) -> Any:
        """``encoding.decode(payload)`` once its estimated cost fits (``keep``: the value
        stays held until the job ends)."""
        size, objects = enc.cost_bound(payload)
        if self.held + self.kept + size > self.limit or (
                self.objects + objects) * 192 > self.limit:
            raise Fault("budget", f"decoding an answer ({len(payload)} bytes, up to {objects} "
                                  f"objects, up to {size >> 20} MiB) would pass the judge's "
                                  f"budget of {self.limit >> 20} MiB for one job")
        value = enc.decode(payload, **kw)
        if keep:
            self.kept += size
            self.objects += objects
        return value


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
        return {"r": ref_path(x.ref)}
    return None


# --------------------------------------------------------------------------- calls


class _Ops:
    """The calls a check makes on the program, in one of two modes.

    * ``record``: nothing reaches the candidate; each call is appended to ``requests`` and a
      stand-in comes back;
    * ``replay``: each call must be the next predicted one (a reference to a by-value result
      matches a value equal to it); its answer comes from the collected answers. A call that
      was not predicted raises :class:`Diverged`.

    While an ``assert`` message is evaluated (``quiet``), a call is answered only if the
    very same call was made before; the message is for the report, never for the verdict.
    """

    def __init__(self, mode: str, requests: list[tuple[bytes, Any]] | None = None,
                 answers: list[tuple[int, bytes]] | None = None, max_result: int = 0,
                 budget: Budget | None = None) -> None:
        self.mode = mode
        self.requests: list[tuple[bytes, Any]] = list(requests or [])
        self.answers = answers if answers is not None else []
        self.max_result = max_result
        self.budget = budget or Budget(1 << 62)
        self.pos = 0
        self.quiet = 0  # > 0 while an assert message is evaluated
        self.values: dict[int, Any] = {}
        self.trees: dict[int, Any] = {}
        self.views: dict[int, Any] = {}
        self.raw_views: tuple[list[int], int, bytes] | None = None  # decoded when first used
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
            if self.quiet:
                raise NotRecorded from None
            raise self._remember(Fault("harness", f"UnencodableArgument: {e}")) from None

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
        if self.quiet:
            return self._answer(self._made_before(tag, tree), tag)
        k = self._next(tag, tree)
        return self._answer(k, tag)

    def _made_before(self, tag: bytes, tree: Any) -> int:
        """An earlier call equal to this one (assert messages repeat the asserted call)."""
        if tag != proto.SETATTR:
            for k in range(min(self.pos, len(self.answers))):
                ptag, ptree = self.requests[k]
                if ptag == tag and self._match(ptree, tree):
                    return k
        raise NotRecorded

    def _next(self, tag: bytes, tree: Any) -> int:
        while self.pos < len(self.requests):
            ptag, ptree = self.requests[self.pos]
            if ptag == tag and self._match(ptree, tree):
                self.pos += 1
                return self.pos - 1
            if self._skippable(ptree):
                self.pos += 1
                continue
            break
        raise self._remember(Diverged(
            f"call #{self.pos + 1} of the check was not among the {len(self.requests)} sent "
            "ahead"))

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
                self.trees[k] = self._decoded(k, json.loads)
            except (ValueError, RecursionError):
                self.trees[k] = _NO_TREE
        return self.trees[k]

    def _decoded(self, k: int, parse: Any) -> Any:
        """``parse`` of answer ``k``'s payload, once its cost is charged to the budget."""
        payload = self.answers[k][1]
        size, objects = enc.cost_bound(payload)
        budget = self.budget
        if budget.held + budget.kept + size > budget.limit:
            raise self._remember(Fault("budget", f"matching the check's calls against an "
                                                 f"answer would pass the judge's budget of "
                                                 f"{budget.limit >> 20} MiB for one job"))
        budget.kept += size
        budget.objects += objects
        return parse(payload)

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
        if self.raised is None and not self.quiet:
            self.raised = e
        return e

    def _reply(self, k: int) -> tuple[int, bytes]:
        if k >= len(self.answers):
            raise self._remember(self.fault or Fault("eof"))
        return self.answers[k]

    def _answer(self, k: int, tag: bytes) -> Any:
        kind, payload = self._reply(k)
        if kind == proto.VALUE and tag != proto.SETATTR:
            if k not in self.values:
                try:
                    self.values[k] = self.budget.decode(payload, True,
                                                        max_bytes=self.max_result)
                except enc.EncodingError as e:
                    self._raise(CandidateError("BadResult", str(e)))
                except Fault as f:
                    raise self._remember(f) from None
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
        raise self._remember(Fault("protocol", f"unexpected reply {chr(kind)!r} to a request"))

    def _raise(self, err: CandidateError) -> None:
        if not self.quiet:
            self.errors.append(err)
        raise err

    def view(self, k: int) -> Any:
        if k not in self.views and self.raw_views is not None:
            raw, self.raw_views = self.raw_views, None
            self._decode_views(*raw)
        if k not in self.views:
            self._raise(CandidateError("UnviewableResult", "no view of a returned object"))
        return self.views[k]

    def handles(self) -> list[int]:
        return [k for k, (kind, _) in enumerate(self.answers) if kind == proto.HANDLE]

    def store_views(self, ks: list[int], kind: int, payload: bytes) -> None:
        """Keep the by-value views of results ``ks`` as they came (decoded when the judge
        first needs one: after the candidate is dead, under the judge's alarm)."""
        self.raw_views = (ks, kind, payload)

    def _decode_views(self, ks: list[int], kind: int, payload: bytes) -> None:
        if kind != proto.VALUE:
            return
        try:
            views = self.budget.decode(payload, True, max_bytes=self.max_result, objects=True)
        except enc.EncodingError:
            return
        except Fault as f:
            raise self._remember(f) from None
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
    """Mark each program object in result ``k``'s view with the path that reaches it.

    The path is kept as a chain of ``(parent, step)`` links (built in constant time per
    object, whatever the nesting) and spelled out only when the check passes that object
    back to the program (:func:`ref_path`).
    """
    stack: list[tuple[Any, Any]] = [(view, None)]
    seen = 0
    while stack and seen < 100000:
        seen += 1
        v, link = stack.pop()
        t = type(v)
        if t is enc.RemoteObject:
            if link is not None:
                v.ref = (k, link)
            if v.attrs is not None:
                stack.extend((x, (link, ("a", name))) for name, x in v.attrs.items()
                             if isinstance(name, str))
        elif t is list or t is tuple:
            stack.extend((x, (link, ("i", i))) for i, x in enumerate(v))


def ref_path(ref: tuple[int, Any]) -> list[Any]:
    """``[k, [[kind, key], ...]]`` of a view's ``(k, link)`` reference."""
    k, link = ref
    steps: list[list[Any]] = []
    while link is not None:
        link, step = link
        steps.append(list(step))
    steps.reverse()
    return [k, steps]


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


