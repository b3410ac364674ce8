"""Task suites from files: ``jsonl:PATH`` (the documented format) and ``hf:NAME``.

The format (one JSON object per line; the full description is in ``docs/tasks.md``)::

    {"task_id": "demo/0", "prompt": "...", "code_prefix": "...", "entry_point": "f",
     "solution": "...",
     "tests": {"kind": "io", "cases": [{"args": [1, 2], "expected": 3}]},
     "metadata": {...}, "split": "test"}

``tests`` may instead be ``{"kind": "assert", "check": "def check(candidate): ...",
"helpers": "..."}``. JSON has no tuples or sets: write them as ``{"__tuple__": [...]}`` and
``{"__set__": [...]}`` (anywhere inside ``args`` and ``expected``). Text fields are taken as
they are (``\\r\\n`` line ends, tabs, helper functions), except the solution, whose line ends
become ``\\n`` because each of its lines is one env step.

Malformed input raises ``ValueError`` naming the file, the line number and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codegym.tasks.base import Task, TaskSuite
from sandboxes import IOCase, TestSuite

TUPLE_KEY = "__tuple__"
SET_KEY = "__set__"

_REQUIRED = ("task_id", "prompt", "entry_point", "solution", "tests")
_OPTIONAL = ("code_prefix", "metadata", "split")
_TEST_FIELDS = {"io": ("kind", "cases", "float_tol"), "assert": ("kind", "check", "helpers")}


class StaticSuite(TaskSuite):
    """A finite suite held in memory: tasks grouped by split, in file order.

    Args:
        name: Suite name (used in messages and ``metadata["suite"]``).
        tasks: Tasks by split name; each split keeps its order.
    """

    def __init__(self, name: str, tasks: Mapping[str, Sequence[Task]]) -> None:
        if not tasks or not any(tasks.values()):
            raise ValueError(f"suite {name!r} holds no tasks")
        self.name = name
        self._tasks: dict[str, tuple[Task, ...]] = {s: tuple(t) for s, t in tasks.items() if t}
        self._by_id: dict[str, Task] = {t.task_id: t for ts in self._tasks.values() for t in ts}

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits present, in order of first appearance."""
        return tuple(self._tasks)

    def size(self, split: str) -> int:
        """Number of tasks in ``split``."""
        return len(self._tasks[self.check_split(split)])

    def get(self, split: str, index: int) -> Task:
        """The ``index``-th task of ``split`` (in file order)."""
        tasks = self._tasks[self.check_split(split)]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(tasks):
            raise ValueError(
                f"index must be an int in [0, {len(tasks)}) for split {split!r} of suite "
                f"{self.name!r}, got {index!r}"
            )
        return tasks[index]

    def by_id(self, task_id: str) -> Task:
        """The task with id ``task_id``."""
        if task_id not in self._by_id:
            raise ValueError(f"suite {self.name!r} has no task {task_id!r}")
        return self._by_id[task_id]

    def __len__(self) -> int:
        return len(self._by_id)


# ---------------------------------------------------------------------------------------
# values


def decode_value(value: Any, where: str = "value") -> Any:
    """JSON value -> Python value, turning ``{"__tuple__": [...]}`` into a tuple and
    ``{"__set__": [...]}`` into a set (recursively)."""
    if isinstance(value, list):
        return [decode_value(v, where) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and TUPLE_KEY in value:
            items = value[TUPLE_KEY]
            if not isinstance(items, list):
                raise ValueError(f"{where}: {TUPLE_KEY!r} needs a JSON array, got {items!r}")
            return tuple(decode_value(v, where) for v in items)
        if len(value) == 1 and SET_KEY in value:
            items = value[SET_KEY]
            if not isinstance(items, list):
                raise ValueError(f"{where}: {SET_KEY!r} needs a JSON array, got {items!r}")
            try:
                return {decode_value(v, where) for v in items}
            except TypeError as exc:
                raise ValueError(f"{where}: set items must be hashable ({exc})") from None
        return {k: decode_value(v, where) for k, v in value.items()}
    return value


def encode_value(value: Any, where: str = "value") -> Any:
    """Python value -> JSON value (the inverse of :func:`decode_value`)."""
    if isinstance(value, tuple):
        return {TUPLE_KEY: [encode_value(v, where) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = [encode_value(v, where) for v in value]
        try:
            items.sort()
        except TypeError:
            items.sort(key=repr)
        return {SET_KEY: items}
    if isinstance(value, list):
        return [encode_value(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}: dict keys must be strings in JSON, got {list(value)!r}")
        return {k: encode_value(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: {type(value).__name__} cannot be written as JSON ({value!r})")


# ---------------------------------------------------------------------------------------
# parsing


def _err(path: str, lineno: int, field: str, msg: str) -> ValueError:
    return ValueError(f"{path}:{lineno}: field {field!r}: {msg}")


def _typed(row: dict[str, Any], key: str, typ: type, path: str, lineno: int, prefix: str = "") -> Any:
    value = row[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise _err(
            path, lineno, prefix + key,
            f"must be a JSON {_JSON_NAMES.get(typ, typ.__name__)}, got {type(value).__name__} "
            f"({_short(value)})",
        )
    return value


_JSON_NAMES = {str: "string", dict: "object", list: "array", float: "number"}


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def parse_task(row: Any, path: str = "<row>", lineno: int = 1, default_split: str = "test") -> tuple[str, Task]:
    """Validate one decoded JSONL row and build its :class:`Task`.

    Returns:
        ``(split, task)``.

    Raises:
        ValueError: naming ``path``, ``lineno`` and the field at fault.
    """
    if not isinstance(row, dict):
        raise _err(path, lineno, "<line>", f"each line must be a JSON object, got {type(row).__name__}")
    for key in _REQUIRED:
        if key not in row:
            raise _err(path, lineno, key, "missing (required fields: " + ", ".join(_REQUIRED) + ")")
    unknown = [k for k in row if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        raise _err(
            path, lineno, unknown[0],
            "unknown field; allowed: " + ", ".join(_REQUIRED + _OPTIONAL)
            + " (put extra data under 'metadata')",
        )
    task_id = _typed(row, "task_id", str, path, lineno)
    if not task_id.strip():
        raise _err(path, lineno, "task_id", "must not be empty")
    prompt = _typed(row, "prompt", str, path, lineno)
    entry_point = _typed(row, "entry_point", str, path, lineno)
    if not entry_point.isidentifier():
        raise _err(path, lineno, "entry_point", f"must be a Python identifier, got {entry_point!r}")
    solution = _typed(row, "solution", str, path, lineno)
    code_prefix = _typed(row, "code_prefix", str, path, lineno) if "code_prefix" in row else ""
    metadata = decode_value(_typed(row, "metadata", dict, path, lineno)) if "metadata" in row else {}
    split = _typed(row, "split", str, path, lineno) if "split" in row else default_split
    if not split.strip():
        raise _err(path, lineno, "split", "must not be empty")
    tests = _parse_tests(row["tests"], entry_point, path, lineno)
    # Each solution line is one env step: line ends become "\n", trailing ones are dropped.
    solution = solution.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    task = Task(
        task_id=task_id,
        prompt=prompt,
        code_prefix=code_prefix,
        entry_point=entry_point,
        tests=tests,
        solution=solution,
        metadata=metadata,
    )
    return split, task


def _parse_tests(tests: Any, entry_point: str, path: str, lineno: int) -> TestSuite:
    if not isinstance(tests, dict):
        raise _err(path, lineno, "tests", f"must be a JSON object, got {type(tests).__name__}")
    if "kind" not in tests:
        raise _err(path, lineno, "tests.kind", 'missing: "io" or "assert"')
    kind = tests["kind"]
    if kind not in _TEST_FIELDS:
        raise _err(path, lineno, "tests.kind", f'must be "io" or "assert", got {_short(kind)}')
    unknown = [k for k in tests if k not in _TEST_FIELDS[kind]]
    if unknown:
        raise _err(
            path, lineno, f"tests.{unknown[0]}",
            f"unknown for kind {kind!r}; allowed: " + ", ".join(_TEST_FIELDS[kind]),
        )
    if kind == "io":
        if "cases" not in tests:
            raise _err(path, lineno, "tests.cases", "missing: a non-empty array of {args, expected}")
        cases_raw = tests["cases"]
        if not isinstance(cases_raw, list) or not cases_raw:
            raise _err(path, lineno, "tests.cases", "must be a non-empty JSON array")
        cases = []
        for i, case in enumerate(cases_raw):
            where = f"tests.cases[{i}]"
            if not isinstance(case, dict):
                raise _err(path, lineno, where, "must be an object {\"args\": [...], \"expected\": ...}")
            for key in ("args", "expected"):
                if key not in case:
                    raise _err(path, lineno, f"{where}.{key}", "missing")
            extra = [k for k in case if k not in ("args", "expected")]
            if extra:
                raise _err(path, lineno, f"{where}.{extra[0]}", "unknown; allowed: args, expected")
            if not isinstance(case["args"], list):
                raise _err(
                    path, lineno, f"{where}.args",
                    f"must be a JSON array of positional arguments, got {type(case['args']).__name__}",
                )
            try:
                args = tuple(decode_value(case["args"]))
                expected = decode_value(case["expected"])
            except ValueError as exc:
                raise _err(path, lineno, where, str(exc)) from None
            cases.append(IOCase(args=args, expected=expected))
        tol = tests.get("float_tol", 1e-6)
        if not isinstance(tol, (int, float)) or isinstance(tol, bool) or tol < 0:
            raise _err(path, lineno, "tests.float_tol", f"must be a number >= 0, got {_short(tol)}")
        return TestSuite(kind="io", entry_point=entry_point, cases=tuple(cases), float_tol=float(tol))
    if "check" not in tests:
        raise _err(path, lineno, "tests.check", "missing: source defining check(candidate)")
    check = _typed(tests, "check", str, path, lineno, "tests.")
    if "def check" not in check:
        raise _err(path, lineno, "tests.check", "must define `def check(candidate): ...`")
    helpers = _typed(tests, "helpers", str, path, lineno, "tests.") if "helpers" in tests else ""
    for key, src in (("tests.check", check), ("tests.helpers", helpers)):
        try:
            compile(src, f"{path}:{lineno}:{key}", "exec")
        except SyntaxError as exc:
            raise _err(path, lineno, key, f"is not valid Python: {exc.msg} (line {exc.lineno})") from None
    return TestSuite(kind="assert", entry_point=entry_point, check=check, helpers=helpers)


def read_jsonl(path: str | os.PathLike[str], split: str = "test") -> dict[str, list[Task]]:
    """Read and validate a task file; tasks grouped by split in file order.

    Args:
        path: The JSONL file.
        split: Split of lines that carry no ``split`` field.

    Raises:
        ValueError: on a missing/unreadable file or malformed line (file, line, field).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"task file {str(p)!r} does not exist or is not a file")
    name = str(p)
    tasks: dict[str, list[Task]] = {}
    first_line: dict[str, int] = {}
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read task file {name!r}: {exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # UTF-8 byte order mark
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _err(name, lineno, "<line>", f"not UTF-8 text ({exc.reason})") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _err(name, lineno, "<line>", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        sp, task = parse_task(row, name, lineno, split)
        if task.task_id in first_line:
            raise _err(
                name, lineno, "task_id",
                f"duplicate id {task.task_id!r} (first on line {first_line[task.task_id]})",
            )
        first_line[task.task_id] = lineno
        tasks.setdefault(sp, []).append(task)
    if not tasks:
        raise ValueError(f"task file {name!r} holds no tasks (one JSON object per line expected)")
    return tasks


class JsonlSuite(StaticSuite):
    """Tasks from a JSONL file in the documented format (``docs/tasks.md``).

    Args:
        path: The file.
        split: Split of lines that carry no ``split`` field.
    """

    def __init__(self, path: str | os.PathLike[str], split: str = "test") -> None:
        if not isinstance(split, str) or not split:
            raise ValueError(f"split must be a non-empty string, got {split!r}")
        super().__init__(f"jsonl:{path}", read_jsonl(path, split))
        self.path = Path(path)


# ---------------------------------------------------------------------------------------
# writing


def task_to_row(task: Task, split: str | None = None) -> dict[str, Any]:
    """One task as a JSONL row of the documented format (inverse of :func:`parse_task`)."""
    if task.tests.kind == "io":
        tests: dict[str, Any] = {
            "kind": "io",
            "cases": [
                {
                    "args": encode_value(list(c.args), f"{task.task_id}: args"),
                    "expected": encode_value(c.expected, f"{task.task_id}: expected"),
                }
                for c in task.tests.cases
            ],
        }
        if task.tests.float_tol != 1e-6:
            tests["float_tol"] = task.tests.float_tol
    else:
        tests = {"kind": "assert", "check": task.tests.check, "helpers": task.tests.helpers}
    row: dict[str, Any] = {
        "task_id": task.task_id,
        "prompt": task.prompt,
        "code_prefix": task.code_prefix,
        "entry_point": task.entry_point,
        "solution": task.solution,
        "tests": tests,
        "metadata": encode_value(dict(task.metadata), f"{task.task_id}: metadata"),
    }
    if split is not None:
        row["split"] = split
    return row


def write_jsonl(
    tasks: Iterable[Task | tuple[str, Task]], path: str | os.PathLike[str]
) -> int:
    """Write tasks (or ``(split, task)`` pairs) to ``path``; returns the number written."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for item in tasks:
            split, task = item if isinstance(item, tuple) else (None, item)
            fh.write(json.dumps(task_to_row(task, split), ensure_ascii=False) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------------------------------
# Hugging Face datasets (needs a reachable hub; not tested offline)


def _hf_humaneval(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "prompt": row["prompt"],
        "code_prefix": row["prompt"],
        "entry_point": row["entry_point"],
        "solution": row["canonical_solution"],
        "tests": {"kind": "assert", "check": row["test"], "helpers": row["prompt"]},
        "metadata": {"suite": "hf:openai_humaneval"},
    }


def _hf_mbpp(row: Mapping[str, Any]) -> dict[str, Any]:
    import ast

    code = row["code"]
    names = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    tests = list(row["test_list"])
    called = set()  # names the tests call (`last` is not called by `sort_list_last(...)`)
    for t in tests:
        try:
            tree = ast.parse(t)
        except SyntaxError:
            continue
        called |= {n.func.id for n in ast.walk(tree)
                   if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    entry = next((n for n in names if n in called), names[-1] if names else "f")
    body = "\n".join("    " + t for t in tests)
    setup = row.get("test_setup_code") or ""
    check = f"def check(candidate):\n    {entry} = candidate\n{body}\n"
    return {
        "task_id": f"mbpp/{row['task_id']}",
        "prompt": f"{row['text']}\n{tests[0]}\n",
        "code_prefix": "",
        "entry_point": entry,
        "solution": code,
        "tests": {"kind": "assert", "check": check, "helpers": setup},
        "metadata": {"suite": "hf:mbpp"},
    }


#: Row mappers for known datasets (HF dataset name -> row -> JSONL-format dict).
HF_MAPPERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "openai_humaneval": _hf_humaneval,
    "openai/openai_humaneval": _hf_humaneval,
    "mbpp": _hf_mbpp,
    "google-research-datasets/mbpp": _hf_mbpp,
}


def load_hf_suite(
    name: str,
    split: str = "test",
    config: str | None = None,
    mapper: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> StaticSuite:
    """A suite from a Hugging Face dataset (downloads it: needs a reachable hub).

    Args:
        name: Dataset name, e.g. ``"openai_humaneval"`` or ``"mbpp"`` (mapped built in), or
            any dataset with ``mapper``.
        split: Dataset split to load (also the suite's split name).
        config: Dataset configuration name, if any.
        mapper: Turns one dataset row into a dict of the JSONL format (``docs/tasks.md``).
    """
    try:
        import datasets  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError:
        raise ValueError(
            "hf: suites need the 'datasets' package: pip install datasets "
            "(or export the data to JSONL and use 'jsonl:PATH')"
        ) from None
    fn = mapper or HF_MAPPERS.get(name)
    if fn is None:
        raise ValueError(
            f"no built-in mapping for dataset {name!r} (known: {sorted(HF_MAPPERS)}); pass "
            "mapper=callable(row) -> dict in the JSONL task format"
        )
    ds = datasets.load_dataset(name, config, split=split)
    tasks = []
    for i, row in enumerate(ds):
        tasks.append(parse_task(fn(row), f"hf:{name}[{split}]", i + 1, split)[1])
    return StaticSuite(f"hf:{name}", {split: tasks})
