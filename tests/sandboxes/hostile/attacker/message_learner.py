# ruff: noqa
"""An adaptive attacker on HumanEval-style checks that call the program again in their
``assert`` messages (``assert candidate(x) == y, "error: " + str(candidate(x))``).

It never computes anything: it answers from what earlier jobs taught it (``KNOWN``, filled in
by the test, which plays a perfect carrier between jobs) and guesses ``GUESS`` for the rest.
Then it watches the calls for the verdict of its guesses:

* order: the same call again right away is the message of a failed ``assert``: the guess was
  wrong; a call with a new argument in a judge that asks call by call means it held;
* count: how many calls came before the job ended;
* timing: a call that comes long after the previous answer was sent after that answer was
  judged (only a judge that asks call by call would wait).

Each conclusion is printed as ``OBSERVED <how> <arg> -> <answer>``.
"""
import time

KNOWN = {}  # replaced by the test: {argument: answer} learned by earlier jobs
GUESS = False
_calls = []
_answered = [0.0]


def _observe(how, arg, value):
    print(f"OBSERVED {how} {arg!r} -> {value!r}", flush=True)


def _learn(a):
    now = time.monotonic()
    if _calls:
        prev = _calls[-1]
        if prev not in KNOWN:
            if a == prev:
                _observe("repeat", prev, not GUESS)
            elif a not in _calls:
                _observe("next", prev, GUESS)
            if now - _answered[0] > 0.02:
                _observe("slow", prev, GUESS)
    _calls.append(a)
    print(f"CALLS {len(_calls)}", flush=True)


def ENTRY(a):
    _learn(a)
    answer = KNOWN.get(a, GUESS)
    _answered[0] = time.monotonic()
    return answer
