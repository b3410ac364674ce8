"""The search table on real tasks with the embedded policy and PRM: every column is what its
definition says, from the same samples, and the budgets are the ones spent."""

from __future__ import annotations

import pytest
import torch

from codegym.defaults import policy_dir, prm_dir
from codegym.search import SearchTable, search_table
from codegym.tasks import load_suite
from sandboxes import make_sandbox


@pytest.fixture(scope="module")
def table():
    torch.set_num_threads(1)
    suite = load_suite("pipelines", min_steps=2, max_steps=6, seed=0)
    tasks = suite.take(6, "test")
    with make_sandbox("local", workers=2) as box:
        return search_table(policy_dir(), prm_dir(), tasks, box, n=3, beams=1, max_lines=10, batch_size=4,
                            buckets="2-3,4-6", aggregations=("last", "min"))  # fmt: skip


def test_columns_follow_their_definitions(table) -> None:
    assert table.methods == ["sample", "bestofn-last", "bestofn-min", "beam", "oracle"]
    assert table.settings["k"] == 3  # n // beams: beam search at best-of-N's budget
    for info in table.tasks:
        out, passes = info["outcomes"], info["passes"]
        assert len(passes) == 3 and out["sample"] == pytest.approx(sum(passes) / 3)
        assert out["oracle"] == float(any(passes))
        for m in ("bestofn-last", "bestofn-min"):
            assert out[m] in (0.0, 1.0) and out[m] <= out["oracle"]
    assert any(0 < info["outcomes"]["sample"] < 1 for info in table.tasks)  # the picks mattered somewhere


def test_rows_give_rates_intervals_and_paired_differences(table) -> None:
    assert [r["group"] for r in table.rows][0] == "all" and sum(r["tasks"] for r in table.rows[1:]) == 6
    for row in table.rows:
        members = [i for i in table.tasks if row["group"] in ("all", i["bucket"])]
        for m in table.methods:
            cell = row["methods"][m]
            rate = sum(i["outcomes"][m] for i in members) / len(members)
            assert cell["rate"] == pytest.approx(rate) and cell["lo"] <= rate <= cell["hi"]
            if m != "sample":
                diff = rate - sum(i["outcomes"]["sample"] for i in members) / len(members)
                assert cell["diff"]["mean"] == pytest.approx(diff)
                assert cell["diff"]["low"] <= diff + 1e-9 and diff - 1e-9 <= cell["diff"]["high"]
    assert "paired difference from `sample`" in table.markdown()


def test_budgets_are_the_ones_spent(table) -> None:
    b = table.budgets
    assert b["bestofn-last"]["sampled_lines"] == pytest.approx(3 * b["sample"]["sampled_lines"])
    assert b["bestofn-last"]["programs"] == 3 and b["sample"]["programs"] == 1
    assert b["oracle"]["executions"] == 3 and b["bestofn-min"]["executions"] == 0
    assert 0 < b["beam"]["sampled_lines"] <= 3 * 10


def test_ranking_auc_counts_passing_over_failing_pairs_within_tasks() -> None:
    tasks = [
        {"passes": [True, False, False], "aggregates": {"last": [0.5, 0.1, 0.5]}},  # a win and a tie
        {"passes": [False, True], "aggregates": {"last": [None, -0.9]}},  # None: no scored line
        {"passes": [True, True], "aggregates": {"last": [0.0, 0.2]}},  # no pair
    ]
    table = SearchTable(["sample"], tasks, {}, settings={"aggregations": ["last"]})
    assert table.ranking() == {"last": {"auc": (1 + 0.5 + 1) / 3, "pairs": 3, "tasks": 2}}


def test_the_real_tables_ranking_is_a_fraction(table) -> None:
    for r in table.ranking().values():
        assert r["pairs"] == 0 or 0.0 <= r["auc"] <= 1.0
