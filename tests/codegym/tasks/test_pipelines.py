"""Tests of the ``pipelines`` suite: format, determinism, splits, horizon, test strength.

Reference solutions and their mutants are our own generated code (trusted), so they are
executed in-process here; the checks do not depend on any sandbox backend. Mutants are built
from the *source lines* (not from the generator's internal operation functions), and
"behaviour-changing" is judged on a held-out pool of inputs drawn here with numpy, so these
tests can catch both a generator whose tests are weak and a code template that disagrees with
the function the generator simulates.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import pickle
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from codegym.tasks import Task, load_suite
from codegym.tasks.pipelines import OP_SETS, OPS, PipelinesSuite, split_of, step_key

_CONSTANTS = ("    return 0", "    return []", "    return None", "    return 1", "    return -1")


def _compile(task: Task, lines: list[str], full: bool = False) -> Callable[..., Any] | None:
    """The ``solve`` function of ``lines``; None if it does not compile. With ``full`` the
    whole ``task.program(lines)`` is compiled, else just the signature and ``lines`` (the
    same function without its docstring: 5x cheaper to compile, for mutants)."""
    ns: dict[str, Any] = {}
    src = task.program(lines) if full else "def solve(xs):\n" + "\n".join(lines) + "\n"
    try:
        exec(compile(src, "<candidate>", "exec"), ns)
    except SyntaxError:
        return None
    return ns.get(task.entry_point)


_LINE_CACHE: dict[str, tuple[bool, Callable[[list[int]], Any]] | None] = {}


def _line_fn(line: str) -> tuple[bool, Callable[[list[int]], Any]] | None:
    """One 4-space-indented body line compiled on its own as a function of ``xs`` (pipelines
    lines read and write only ``xs``); None if it does not compile. Cached: mutants share
    their lines."""
    if line not in _LINE_CACHE:
        is_return = line.startswith("    return")
        src = f"def f(xs):\n{line}\n" + ("" if is_return else "    return xs\n")
        ns: dict[str, Any] = {}
        try:
            exec(compile(src, "<line>", "exec"), ns)
            _LINE_CACHE[line] = (is_return, ns["f"])
        except SyntaxError:
            _LINE_CACHE[line] = None
    return _LINE_CACHE[line]


def _chain(lines: list[str]) -> Callable[[list[int]], Any] | None:
    """A function equal to ``def solve(xs): <lines>`` (every line reads and writes only
    ``xs``, so the body is the composition of its lines), without compiling it whole.
    None for an empty body (a syntax error, like the whole program)."""
    compiled = [_line_fn(line) for line in lines]
    if not lines or None in compiled:
        return None  # an empty body or a line that does not compile: a syntax error
    fns = [c for c in compiled if c is not None]

    def solve(xs: list[int]) -> Any:
        for is_return, f in fns:
            xs = f(xs)
            if is_return:
                return xs
        return None

    return solve


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    try:
        return True, fn(*[list(a) if isinstance(a, list) else copy.deepcopy(a) for a in args])
    except Exception:  # noqa: BLE001 - a raising mutant is simply a different behaviour
        return False, None


def _passes(task: Task, lines: list[str], chained: bool = False) -> bool:
    """True iff ``lines`` pass every io case of ``task`` (types compared too)."""
    fn = _chain(lines) if chained else _compile(task, lines)
    if fn is None:
        return False
    for case in task.tests.cases:
        ok, out = _call(fn, case.args)
        if not ok or type(out) is not type(case.expected) or out != case.expected:
            return False
    return True


@functools.lru_cache(maxsize=32)
def _held_out_inputs(seed: int) -> list[list[int]]:
    """Inputs the generator never saw: another RNG, wider values and lengths, edge cases."""
    rng = np.random.default_rng(seed)
    pool: list[list[int]] = [[], [0], [1], [-1], [2, 2], [5, 5, 5, 5], [-3, -3, 7, 7, 7]]
    pool.append(list(range(-12, 25)))
    pool.append(list(range(25, -12, -1)))
    for _ in range(70):
        n = int(rng.integers(0, 26))
        lo, hi = sorted(int(v) for v in rng.integers(-40, 50, size=2))
        if rng.random() < 0.3:  # duplicates
            vals = rng.integers(lo, hi + 2, size=int(rng.integers(1, 4)))
            pool.append([int(v) for v in rng.choice(vals, size=n)])
        else:
            pool.append([int(v) for v in rng.integers(lo, hi + 2, size=n)])
    return pool


def _outputs(fn: Callable[..., Any] | None, inputs: list[list[int]]) -> list[Any]:
    if fn is None:
        return ["<syntax error>"] * len(inputs)
    res = []
    for xs in inputs:
        ok, out = _call(fn, (xs,))
        res.append((type(out).__name__, out) if ok else "<raised>")
    return res


def _replacement_lines(suite: PipelinesSuite, task: Task, j: int, rng: np.random.Generator) -> list[str]:
    """Lines that replace line ``j``: every other operation of the suite (a parameter drawn
    here), the same operation with nearby parameters, the other return forms, an early
    return."""
    ops = task.metadata["ops"]
    name, _, param = ops[j].partition(":")
    k = int(param) if param else 0
    lines: list[str] = []
    if OPS[name].is_return:
        return ["    " + r.code for r in suite.returns if r.name != name]
    for op in suite.transforms:
        if op.param == "none":
            params = [0]
        elif op.name == name:
            params = [k - 2, k - 1, k + 1, k + 2]
        elif op.param == "int":
            params = [int(rng.choice(op.domain))]
        else:
            params = [k + int(rng.integers(-3, 4)), int(rng.integers(-10, 30))]
        for p in params:
            if op.param == "int" and p <= 0:
                continue
            line = "    " + op.code.format(k=p)
            if line != task.solution_lines[j]:
                lines.append(line)
    lines.append(task.solution_lines[-1])  # early return
    return lines


def _edits(line: str, rng: np.random.Generator) -> list[str]:
    """Text edits of a line, drawn here (not the generator's list): a random other digit at
    each digit position, sign flips, and operator/call swaps like the ``reference`` agent's
    ``corrupt_line``."""
    out = []
    for p, c in enumerate(line):
        if c.isdigit():
            for _ in range(3):
                out.append(line[:p] + str((int(c) + int(rng.integers(1, 10))) % 10) + line[p + 1 :])
    out += [line[: m.start()] + line[m.end() :] for m in re.finditer(r"-(?=\d)", line)]
    out += [line[: m.start()] + "-" + line[m.start() :] for m in re.finditer(r"(?<=[ (\[:=])(?=\d)", line)]
    for a, b in ((" + ", " - "), (" > ", " < "), (" * ", " + "), ("sum(", "len("), ("[::-1]", ""),
                 (" < ", " <= "), (" == ", " != "), ("max(", "min("), ("min(", "max("),
                 (", reverse=True", ""), ("len(", "sum(")):
        if a in line:
            out.append(line.replace(a, b, 1))
    return out


def _mutants(suite: PipelinesSuite, task: Task, rng: np.random.Generator) -> list[list[str]]:
    """Single-line mutants of the reference, built from its source lines."""
    ref = task.solution_lines
    n = len(ref)
    muts: list[list[str]] = []
    for j in range(n):
        muts.append(ref[:j] + ref[j + 1 :])  # delete
        muts.append(ref[: j + 1] + ref[j:])  # duplicate
        if j + 1 < n:
            muts.append(ref[:j] + [ref[j + 1], ref[j]] + ref[j + 2 :])  # swap adjacent
        alts = _replacement_lines(suite, task, j, rng) + _edits(ref[j], rng) + ref
        for line in dict.fromkeys(alts):
            if line != ref[j]:
                muts.append(ref[:j] + [line] + ref[j + 1 :])
    muts.extend(["    " + r.code] for r in suite.returns)  # skip every step
    return muts


def _mutant_stats(suite: PipelinesSuite, task: Task, seed: int) -> tuple[int, int, list[list[str]]]:
    """(behaviour-changing mutants, how many of them fail the task's tests, survivors)."""
    rng = np.random.default_rng(seed)
    inputs = _held_out_inputs(seed % 16)
    ref_out = _outputs(_compile(task, task.solution_lines), inputs)
    changing = killed = 0
    survivors = []
    for lines in _mutants(suite, task, rng):
        if not _passes(task, lines, chained=True):
            changing += 1  # failing the tests while the reference passes: it changed behaviour
            killed += 1
        elif _outputs(_chain(lines), inputs) != ref_out:
            changing += 1
            survivors.append(lines)
    return changing, killed, survivors


# --------------------------------------------------------------------------------------


def test_chained_lines_equal_the_compiled_program() -> None:
    """The fast mutant evaluator (line by line) agrees with compiling the whole program."""
    suite = PipelinesSuite(seed=4)
    inputs = _held_out_inputs(4)[:30]
    rng = np.random.default_rng(4)
    checked = 0
    for i in range(6):
        task = suite.get("train", i)
        for lines in _mutants(suite, task, rng)[:40]:
            assert _outputs(_chain(lines), inputs) == _outputs(_compile(task, lines), inputs)
            checked += 1
    assert checked > 100


def test_op_code_matches_simulated_function() -> None:
    """Every operation's source line computes exactly what the generator simulates."""
    inputs = _held_out_inputs(7)
    for op in OPS.values():
        params = op.domain if op.param == "int" else ((-3, 0, 4, 11) if op.param == "value" else (0,))
        for k in params:
            src = "def f(xs):\n    " + op.code.format(k=k) + ("" if op.is_return else "\n    return xs")
            ns: dict[str, Any] = {}
            exec(src, ns)
            for xs in inputs:
                assert ns["f"](list(xs)) == op.fn(list(xs), k), (op.name, k, xs)


def test_task_format_and_reference_passes() -> None:
    suite = PipelinesSuite(seed=3)
    for i in range(40):
        task = suite.get("train", i)
        assert task.task_id == f"pipelines/train/{i}"
        assert task.prompt == task.code_prefix
        assert task.code_prefix.startswith("def solve(xs):\n")
        steps = re.findall(r"^    (\d+)\. (.+)$", task.code_prefix, flags=re.M)
        assert [int(s[0]) for s in steps] == list(range(1, task.horizon + 1))
        assert steps[-1][1].startswith("return ")
        md = task.metadata
        assert md["suite"] == "pipelines" and md["split"] == "train" and md["index"] == i
        assert md["steps"] == task.horizon == len(md["ops"]) == len(task.solution_lines)
        for line in task.solution_lines:
            assert line.startswith("    ") and not line.startswith("     ")
        assert task.solution_lines[-1].startswith("    return ")
        assert all(ln.startswith("    xs = ") for ln in task.solution_lines[:-1])
        assert task.tests.kind == "io" and task.tests.entry_point == "solve"
        assert suite.min_cases <= len(task.tests.cases) <= suite.max_cases
        assert _passes(task, task.solution_lines)
        fn = _compile(task, task.solution_lines, full=True)
        assert fn is not None and fn.__doc__ and fn.__doc__.count("\n") > task.horizon
        for case in task.tests.cases:
            assert fn(*copy.deepcopy(case.args)) == case.expected


def test_basic_set_is_one_phrasing_per_operation() -> None:
    suite = PipelinesSuite()
    phrasing: dict[str, set[str]] = {}
    for i in range(150):
        task = suite.get("train", i)
        texts = re.findall(r"^    \d+\. (.+)$", task.code_prefix, flags=re.M)
        for key, text in zip(task.metadata["ops"], texts):
            name = key.split(":")[0]
            phrasing.setdefault(name, set()).add(re.sub(r"-?\d+", "K", text))
    assert set(phrasing) <= set(OP_SETS["basic"])
    assert len(phrasing) >= 15  # nearly every operation shows up
    assert all(len(v) == 1 for v in phrasing.values()), phrasing


def test_deterministic_and_seeded() -> None:
    a, b = PipelinesSuite(seed=5), PipelinesSuite(seed=5)
    ids = [("test", 9), ("train", 0), ("validation", 3), ("test", 0), ("train", 77)]
    from_a = [a.get(split, i) for split, i in ids]
    from_b = [b.get(split, i) for split, i in reversed(ids)][::-1]  # access order is irrelevant
    assert from_a == from_b
    assert a.get("test", 9) is from_a[0]  # cached
    c = PipelinesSuite(seed=6)
    differ = sum(a.get("train", i).solution != c.get("train", i).solution for i in range(20))
    assert differ >= 15


def test_splits_are_disjoint() -> None:
    seen: dict[str, set[tuple[str, ...]]] = {}
    for kwargs in ({"min_steps": 1, "max_steps": 3}, {}):
        suite = PipelinesSuite(seed=1, **kwargs)
        for split in suite.splits:
            for i in range(400 if kwargs else 150):
                task = suite.get(split, i)
                ops = tuple(task.metadata["ops"])
                assert task.metadata["split"] == split
                steps = [(OPS[k.split(":")[0]], int(k.split(":")[1]) if ":" in k else 0) for k in ops]
                assert [step_key(s) for s in steps] == list(ops)
                assert split_of(steps) == split
                seen.setdefault(split, set()).add(ops)
    assert sum(len(v) for v in seen.values()) > 700
    assert not seen["train"] & seen["test"]
    assert not seen["train"] & seen["validation"]
    assert not seen["validation"] & seen["test"]


def test_horizon_knob() -> None:
    fixed = PipelinesSuite(min_steps=4, max_steps=4)
    assert {fixed.get("test", i).horizon for i in range(30)} == {4}
    ranged = PipelinesSuite(min_steps=2, max_steps=5)
    counts = Counter(ranged.get("train", i).horizon for i in range(200))
    assert set(counts) == {2, 3, 4, 5}
    assert min(counts.values()) >= 25  # roughly uniform: rejections do not skew it
    long = PipelinesSuite(min_steps=12, max_steps=12)
    assert {long.get("validation", i).horizon for i in range(10)} == {12}


@pytest.mark.parametrize(
    "kwargs, n_per_split",
    [({}, 167), ({"ops": "full"}, 34)],
    ids=["basic-500", "full-100"],
)
def test_tests_are_strong(kwargs: dict[str, Any], n_per_split: int) -> None:
    """Each task rejects constant answers and >= 95 % of its reference's behaviour-changing
    single-line mutants fail its tests (the issue's acceptance test over 500 tasks)."""
    suite = PipelinesSuite(seed=11, **kwargs)
    total_changing = total_killed = 0
    weak: list[str] = []
    for split in suite.splits:
        for i in range(n_per_split):
            task = suite.get(split, i)
            assert _passes(task, task.solution_lines), task.task_id
            expected = {repr(c.expected) for c in task.tests.cases}
            assert len(expected) >= 3, task.task_id
            for const in _CONSTANTS:
                assert not _passes(task, [const]), (task.task_id, const)
            changing, killed, survivors = _mutant_stats(suite, task, seed=i)
            total_changing += changing
            total_killed += killed
            if killed < 0.95 * changing:
                weak.append(f"{task.task_id}: {killed}/{changing}, e.g. {survivors[:1]}")
    assert total_changing > 20 * 3 * n_per_split
    assert not weak, "\n".join(weak[:5])


def test_pipelines_do_not_empty_most_tests() -> None:
    """Long pipelines keep enough elements: few cases expect the empty-list answer."""
    suite = PipelinesSuite(min_steps=10, max_steps=12)
    for i in range(30):
        task = suite.get("train", i)
        fn = _compile(task, task.solution_lines[:-1] + ["    return xs"])
        assert fn is not None
        finals = [fn(*copy.deepcopy(c.args)) for c in task.tests.cases]
        assert sum(1 for f in finals if not f) <= len(finals) // 2, task.task_id


def test_custom_op_list_and_validation() -> None:
    suite = PipelinesSuite(ops=["add", "reverse", "take", "ret_list", "ret_sum"], max_steps=4)
    for i in range(20):
        names = {k.split(":")[0] for k in suite.get("train", i).metadata["ops"]}
        assert names <= {"add", "reverse", "take", "ret_list", "ret_sum"}
    with pytest.raises(ValueError, match="unknown operation"):
        PipelinesSuite(ops=["add", "nope", "ret_sum"])
    with pytest.raises(ValueError, match="return form"):
        PipelinesSuite(ops=["add"])
    with pytest.raises(ValueError, match="unknown ops set"):
        PipelinesSuite(ops="huge")
    with pytest.raises(ValueError, match="min_steps"):
        PipelinesSuite(min_steps=5, max_steps=3)
    with pytest.raises(ValueError, match="max_steps"):
        PipelinesSuite(max_steps=0)
    suite = PipelinesSuite()
    with pytest.raises(ValueError, match="split"):
        suite.get("dev", 0)
    with pytest.raises(ValueError, match="index"):
        suite.get("test", -1)
    assert suite.size("train") is None


def test_one_step_tasks_respect_splits() -> None:
    suite = PipelinesSuite(min_steps=1, max_steps=1)
    for split in suite.splits:
        if any(split_of([(r, 0)]) == split for r in suite.returns):
            task = suite.get(split, 0)
            assert task.horizon == 1 and split_of([(OPS[task.metadata["ops"][0]], 0)]) == split
        else:
            with pytest.raises(ValueError, match="max_steps >= 2"):
                suite.get(split, 0)


def test_load_suite_and_sampling() -> None:
    suite = load_suite("pipelines", seed=2, min_steps=2, max_steps=3)
    assert isinstance(suite, PipelinesSuite) and suite.default_split() == "test"
    rng = np.random.default_rng(0)
    task = suite.sample(rng)
    assert task.metadata["split"] == "test" and 2 <= task.horizon <= 3
    assert [t.task_id for t in suite.take(3)] == [f"pipelines/test/{i}" for i in range(3)]


def test_strength_check_catches_weak_tests() -> None:
    """Negative control: the same tasks with their tests cut to their first case fail the
    strength check, so the check above can fail."""
    suite = PipelinesSuite(seed=11, min_steps=4, max_steps=8)
    weak = 0
    for i in range(10):
        task = suite.get("train", i)
        cut = dataclasses.replace(
            task, tests=dataclasses.replace(task.tests, cases=task.tests.cases[:1])
        )
        changing, killed, _ = _mutant_stats(suite, cut, seed=i)
        weak += killed < 0.95 * changing
    assert weak >= 5


def test_suite_pickles_by_arguments() -> None:
    """Vector envs may ship a suite to worker processes: it pickles and regenerates."""
    suite = PipelinesSuite(seed=9, min_steps=2, max_steps=5, ops=["add", "sort", "take", "ret_sum", "ret_list"])
    task = suite.get("test", 3)
    clone = pickle.loads(pickle.dumps(suite))
    assert repr(clone) == repr(suite)
    assert clone.get("test", 3) == task


def test_every_step_matters_and_long_tasks_are_varied() -> None:
    """Deleting any one line of a reference fails its tests, and long tasks use the whole
    operation set and most return forms (not just maps and ``return xs``)."""
    suite = PipelinesSuite(seed=8, min_steps=10, max_steps=12)
    op_counts: Counter[str] = Counter()
    returns: Counter[str] = Counter()
    for split in suite.splits:
        for i in range(25):
            task = suite.get(split, i)
            lines = task.solution_lines
            for j in range(len(lines)):
                assert not _passes(task, lines[:j] + lines[j + 1 :], chained=True), (task.task_id, j)
            op_counts.update(k.split(":")[0] for k in task.metadata["ops"][:-1])
            returns[task.metadata["ops"][-1]] += 1
    assert set(op_counts) == set(OP_SETS["basic"][:12])
    assert max(op_counts.values()) < 0.25 * sum(op_counts.values())  # maps lead: ~20 %
    assert len(returns) >= 4 and max(returns.values()) < 0.6 * sum(returns.values())
