"""The judge's view of a check: which program names it needs, and the calls it predicts."""

from __future__ import annotations

import signal

from sandboxes.worker import protocol as proto
from sandboxes.worker.calls import _Ops, referenced
from sandboxes.worker.judge import Judge, _Trusted

MBPP_CHECK = ("def check(candidate):\n    max_height = candidate\n"
              "    assert max_height(root) == 3\n    assert tuple_size((1,)) == sys.getsizeof((1,))\n")
SETUP = "root = Node(1)\nroot.left = Node(2)\nroot.left.left = Node(4)\n"


def test_names_the_check_needs_from_the_program() -> None:
    t = _Trusted(SETUP, MBPP_CHECK, "max_height")
    # Node and tuple_size come from the program; sys is imported by the judge itself;
    # builtins, names the code defines and the entry point are not the program's business
    assert t.program_names == ["Node", "sys", "tuple_size"]


def _predict(helpers: str, check: str, entry: str = "f") -> tuple[list, bool]:
    judge = Judge({"max_result_bytes": 1 << 20}, [], None)
    try:
        return judge._predict({"entry": entry}, _Trusted(helpers, check, entry))
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def test_the_prediction_follows_a_correct_program() -> None:
    """Every assert is taken as held, so calls after a would-be failure are predicted too,
    and random draws are the ones the real run will make."""
    check = ("import random\ndef check(candidate):\n    assert not candidate(0)\n"
             "    assert candidate(1) is True\n"
             "    for _ in range(3):\n        x = random.randint(0, 100)\n"
             "        assert abs(candidate(x) - x) < 1e-6\n")
    requests, complete = _predict("", check)
    assert complete and len(requests) == 5
    assert all(tag == proto.CALL for tag, _ in requests)
    again, _ = _predict("", check)
    assert again == requests  # same seed, same calls


def test_program_objects_are_predicted_as_references() -> None:
    requests, complete = _predict(SETUP, MBPP_CHECK, "max_height")
    assert complete
    trees = [tree for _, tree in requests]
    assert trees[0][0] == {"g": "Node"} and trees[1][0] == {"g": "Node"}
    assert [t for t, _ in requests[:4]] == [proto.CALL, proto.CALL, proto.SETATTR, proto.CALL]
    assert trees[2][0] == {"r": 0} and trees[2][2] == "left"  # root.left = Node(2)
    assert trees[4][0] == {"r": [0, [["a", "left"]]]}  # root.left.left = Node(4)
    assert referenced(requests) == {0, 1, 3}


def test_a_reference_to_a_by_value_result_matches_that_value() -> None:
    ops = _Ops("replay", [], [(proto.VALUE, b"[1,2]")])
    assert ops._match({"r": 0}, [1, 2]) and not ops._match({"r": 0}, [2, 1])
    assert ops._match([{"r": [0, [["i", 1]]]}, 5], [2, 5])


def test_checks_that_branch_on_results_are_flagged_incomplete_or_diverge() -> None:
    requests, complete = _predict("", "def check(candidate):\n    x = candidate(1)\n"
                                      "    assert candidate(x + 1) == 3\n")
    assert not complete and len(requests) == 1  # x + 1 is unknown: cannot be sent ahead
