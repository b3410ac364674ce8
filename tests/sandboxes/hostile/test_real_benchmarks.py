"""Class 7: real benchmark tests must be judged right, on every backend, and stay unforgeable.

Each task below has the shape of one cause found on a public benchmark of basic Python tasks
(rows in that benchmark's format, loaded with the project's own ``mbpp`` row mapper): a
reference solution must pass, a wrong one must fail, and a program that tries to use the new
reach of the checks (its classes, its imported modules) to forge a pass must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from codegym.tasks.jsonl import HF_MAPPERS, parse_task
from sandboxes import Sandbox, Status, TestSuite

ROWS: dict[str, dict[str, Any]] = {
    # a returned Counter (a dict subclass)
    "counter": {
        "task_id": 901, "text": "Count the words of a sentence.",
        "code": "from collections import Counter\ndef word_count(s):\n"
                "    return Counter(s.split())\n",
        "test_list": ["assert word_count('a b a') == {'a': 2, 'b': 1}",
                      "assert word_count('x y')['y'] == 1"],
        "test_setup_code": "",
        "wrong": "def word_count(s):\n    return {w: 1 for w in s.split()}\n",
    },
    # a returned defaultdict (a dict subclass with a factory)
    "defaultdict": {
        "task_id": 902, "text": "Group words by their first letter.",
        "code": "from collections import defaultdict\ndef group_by_first(ws):\n"
                "    d = defaultdict(list)\n    for w in ws:\n        d[w[0]].append(w)\n"
                "    return d\n",
        "test_list": ["assert group_by_first(['ab', 'ac', 'b']) == {'a': ['ab', 'ac'], 'b': ['b']}"],
        "test_setup_code": "",
        "wrong": "def group_by_first(ws):\n    return {w[0]: [w] for w in ws}\n",
    },
    # a type object as an argument
    "type_argument": {
        "task_id": 903, "text": "Keep the elements of a tuple that have a given type.",
        "code": "def keep_type(t, typ):\n    return tuple(x for x in t if isinstance(x, typ))\n",
        "test_list": ["assert keep_type((4, 5, 7.7), int) == (4, 5)",
                      "assert keep_type((1, 'a', 2.5), str) == ('a',)"],
        "test_setup_code": "",
        "wrong": "def keep_type(t, typ):\n    return t\n",
    },
    # set-up code that builds instances of a class the program defines, with attribute writes
    "class_in_setup": {
        "task_id": 904, "text": "Height of a binary tree.",
        "code": "class Node:\n    def __init__(self, data):\n        self.data = data\n"
                "        self.left = None\n        self.right = None\n"
                "def max_height(node):\n    if node is None:\n        return 0\n"
                "    return 1 + max(max_height(node.left), max_height(node.right))\n",
        "test_list": ["assert max_height(root) == 3", "assert max_height(root1) == 1"],
        "test_setup_code": "root = Node(1)\nroot.left = Node(2)\nroot.right = Node(3)\n"
                           "root.left.left = Node(4)\nroot1 = Node(7)",
        "wrong": "class Node:\n    def __init__(self, data):\n        self.data = data\n"
                 "        self.left = None\n        self.right = None\n"
                 "def max_height(node):\n    return 1\n",
    },
    # check code that builds instances of the program's class as arguments
    "class_in_arguments": {
        "task_id": 905, "text": "Longest chain of pairs.",
        "code": "class Pair(object):\n    def __init__(self, a, b):\n        self.a = a\n"
                "        self.b = b\ndef max_chain_length(arr, n):\n"
                "    arr = sorted(arr, key=lambda p: p.b)\n    count, end = 0, float('-inf')\n"
                "    for p in arr:\n        if p.a > end:\n            count += 1\n"
                "            end = p.b\n    return count\n",
        "test_list": ["assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), "
                      "Pair(50, 60)], 4) == 3",
                      "assert max_chain_length([Pair(1, 2), Pair(3, 4), Pair(5, 6), "
                      "Pair(7, 8)], 4) == 4"],
        "test_setup_code": "",
        "wrong": "class Pair(object):\n    def __init__(self, a, b):\n        self.a = a\n"
                 "        self.b = b\ndef max_chain_length(arr, n):\n    return n\n",
    },
    # a check that uses a module the program imported
    "program_module": {
        "task_id": 906, "text": "Size in bytes of a tuple.",
        "code": "import sys\ndef tuple_size(t):\n    return sys.getsizeof(t)\n",
        "test_list": ["assert tuple_size(('A', 1, 'B', 2)) == sys.getsizeof(('A', 1, 'B', 2))"],
        "test_setup_code": "",
        "wrong": "def tuple_size(t):\n    return len(t)\n",
    },
    # one function's name is a substring of the entry point's (`last` in `sort_list_last`)
    "entry_point_substring": {
        "task_id": 907, "text": "Sort a list of tuples by their last element.",
        "code": "def last(n):\n    return n[-1]\ndef sort_list_last(tuples):\n"
                "    return sorted(tuples, key=last)\n",
        "test_list": ["assert sort_list_last([(2, 5), (1, 2), (4, 4)]) == [(1, 2), (4, 4), (2, 5)]"],
        "test_setup_code": "",
        "wrong": "def last(n):\n    return n[-1]\ndef sort_list_last(tuples):\n    return tuples\n",
    },
    # the program's own function is named `check` (MBPP: "check whether ..."): the
    # harness's check(candidate) must not collide with it
    "named_check": {
        "task_id": 908, "text": "Check whether the given string is a binary string or not.",
        "code": "def check(string):\n    p = set(string)\n    s = {'0', '1'}\n"
                "    if s == p or p == {'0'} or p == {'1'}:\n        return 'Yes'\n"
                "    else:\n        return 'No'\n",
        "test_list": ["assert check('01010101010') == 'Yes'",
                      "assert check('name0') == 'No'", "assert check('101') == 'Yes'"],
        "test_setup_code": "",
        "wrong": "def check(string):\n    return 'Yes'\n",
    },
    # a helper named `check` that the tests call beside the entry point
    "helper_named_check": {
        "task_id": 909, "text": "Count the even numbers of a list.",
        "code": "def check(n):\n    return n % 2 == 0\n"
                "def count_even(xs):\n    return sum(1 for x in xs if check(x))\n",
        "test_list": ["assert count_even([1, 2, 4]) == 2", "assert check(6) is True",
                      "assert count_even([]) == 0"],
        "test_setup_code": "",
        "wrong": "def check(n):\n    return True\ndef count_even(xs):\n    return len(xs)\n",
    },
}

#: programs that try to reach a pass through what the checks may now touch
FORGERIES = {
    # the check's `sys` is the judge's own module, not this stand-in
    "program_module": "class _S:\n    def getsizeof(self, t):\n        return 0\nsys = _S()\n"
                      "def tuple_size(t):\n    return 0\n",
    # an always-equal class: compared by value (class name + attributes), never by __eq__
    "class_in_setup": "class Node:\n    def __init__(self, data):\n        pass\n"
                      "    def __eq__(self, other):\n        return True\n"
                      "def max_height(node):\n    return Node(0)\n",
    # a Pair whose constructor ignores its arguments cannot make the count right
    "class_in_arguments": "class Pair:\n    def __init__(self, *a):\n        pass\n"
                          "    def __eq__(self, o):\n        return True\n"
                          "    __hash__ = object.__hash__\n"
                          "def max_chain_length(arr, n):\n    return arr\n",
    # a Counter subclass whose __eq__ lies travels as its plain value
    "counter": "from collections import Counter\nclass C(Counter):\n"
               "    def __eq__(self, o):\n        return True\n"
               "def word_count(s):\n    return C()\n",
}


def _task(name: str) -> tuple[str, TestSuite, str]:
    row = ROWS[name]
    _, task = parse_task(HF_MAPPERS["mbpp"](row), f"hf:mbpp-shape/{name}", 1)
    return task.program(task.solution_lines), task.tests, task.entry_point


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=2)
    yield sandbox
    sandbox.close()


def test_the_mapper_picks_the_called_function() -> None:
    assert _task("entry_point_substring")[2] == "sort_list_last"
    assert _task("class_in_setup")[2] == "max_height"
    assert _task("named_check")[2] == "check"


@pytest.mark.parametrize("name", ["named_check", "helper_named_check"])
def test_a_program_function_named_check_in_a_jsonl_suite(box: Sandbox, name: str,
                                                          tmp_path: Any) -> None:
    """MBPP-style rows through the JSONL format: the program's `check` is the program's, the
    harness's is its own, whatever the names."""
    from codegym.tasks.jsonl import JsonlSuite, write_jsonl

    _, task = parse_task(HF_MAPPERS["mbpp"](ROWS[name]), f"hf:mbpp-shape/{name}", 1)
    path = tmp_path / "mbpp.jsonl"
    write_jsonl([task], path)
    loaded = JsonlSuite(path).take()[0]
    ok = box.run(loaded.program(loaded.solution_lines), loaded.tests)
    assert ok.status is Status.PASSED, ok
    wrong = box.run(ROWS[name]["wrong"], loaded.tests)
    assert wrong.status is Status.FAILED and wrong.error_type == "WrongAnswer", wrong


@pytest.mark.parametrize("name", sorted(ROWS))
def test_reference_passes_and_wrong_program_fails(box: Sandbox, name: str) -> None:
    program, suite, _ = _task(name)
    ok = box.run(program, suite)
    assert ok.status is Status.PASSED, ok
    wrong = box.run(ROWS[name]["wrong"], suite)
    assert wrong.status in (Status.FAILED, Status.ERROR), wrong


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_programs_cannot_forge_through_their_own_names(box: Sandbox, name: str) -> None:
    _, suite, _ = _task(name)
    r = box.run(FORGERIES[name], suite)
    assert r.status in (Status.FAILED, Status.ERROR), r


def test_objects_compare_by_value_in_the_judge(box: Sandbox) -> None:
    """Expected values built from the program's class compare by class and attributes."""
    code = ("class P:\n    def __init__(self, x):\n        self.x = x\n"
            "def make(xs):\n    return [P(x) for x in xs]\n")
    check = ("def check(candidate):\n    assert candidate([1, 2]) == [P(1), P(2)]\n"
             "    assert candidate([1]) != [P(3)]\n    assert isinstance(candidate([5])[0], P)\n")
    suite = TestSuite(kind="assert", entry_point="make", check=check)
    assert box.run(code, suite).ok
    swapped = code.replace("[P(x) for x in xs]", "[P(x + 1) for x in xs]")
    assert box.run(swapped, suite).status is Status.FAILED
