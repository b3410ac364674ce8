"""codegym.evaluation.evaluate_policy (greedy and sampled pass@1) and the paired change of two runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codegym.evaluation import evaluate_policy
from codegym.reporting.stats import paired_change
from codegym.tasks import load_suite
from sandboxes import make_sandbox


def test_sampled_pass_at_1_is_per_task_fraction_and_seeded(tiny_policy_dir: Path) -> None:
    from codegym.lm import load_causal_lm

    model, tok = load_causal_lm(tiny_policy_dir)
    tasks = load_suite("pipelines", min_steps=1, max_steps=2, seed=0).take(3, "train")
    kw = dict(max_new_tokens=16, max_lines=3, max_line_tokens=8, batch_size=4)
    with make_sandbox("local", workers=2) as box:
        a = evaluate_policy(model, tok, tasks, box, samples=3, seed=5, **kw)
        b = evaluate_policy(model, tok, tasks, box, samples=3, seed=5, **kw)
        g = evaluate_policy(model, tok, tasks, box, **kw)
        with pytest.raises(ValueError, match="samples"):
            evaluate_policy(model, tok, tasks, box, samples=0)
    assert a.passed.shape == (3,) and a.passed.dtype == float
    assert np.all((a.passed * 3) % 1 == 0)  # a fraction of 3 samples per task
    assert a.task_ids == b.task_ids == [t.task_id for t in tasks]
    assert np.array_equal(a.passed, b.passed) and np.array_equal(a.num_lines, b.num_lines)  # same seed
    assert a.tokens == b.tokens > 0
    assert g.passed.dtype == bool and g.num_lines.dtype.kind == "i"


def test_paired_change_matches_hand_computation() -> None:
    d = paired_change(np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0, 1.0]))
    assert d.mean == pytest.approx(0.25) and d.n == 4
    half = 1.959963984540054 * np.std([1, 0, 0, 0], ddof=1) / 2
    assert (d.low, d.high) == pytest.approx((0.25 - half, 0.25 + half))
    with pytest.raises(ValueError, match="same length"):
        paired_change(np.zeros(3), np.zeros(4))
