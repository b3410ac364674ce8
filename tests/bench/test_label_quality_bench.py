"""The label-quality bench runs end to end on a tiny budget and writes what it measured.

Figures of the model completer are not asserted (they belong to the bench); the reference
completer is the oracle's own completion, so its labels must agree with the truth wherever
the truth is monotone (these short tasks), and every setting labels the same responses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import label_quality as bench  # noqa: E402


def test_bench_labels_one_policys_responses_with_each_setting(tiny_policy_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lq"
    argv = ["--responder", str(tiny_policy_dir), "--buckets", "2-2,3-3", "--min-task-lines", "2",
            "--max-task-lines", "3", "--per-bucket", "3", "--max-new-tokens", "24", "--max-lines", "5",
            "--setting", "ref=reference:1", "--setting", f"policy={tiny_policy_dir}:2:auto",
            "--setting", f"perline={tiny_policy_dir}:1:perline,max=2", "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    results = {r["setting"]: r for r in json.loads((out / "label_quality.json").read_text())}
    assert set(results) == {"ref", "policy", "perline"}
    for res in results.values():
        assert res["quality"]["all"]["responses"] == 6
        assert set(res["quality"]) == {"2-2", "3-3", "all"}
    rows = {name: [json.loads(x) for x in (out / f"{name}.jsonl").read_text().splitlines()] for name in results}
    assert len({tuple(tuple(r["completions"]) for r in rs) for rs in rows.values()}) == 1  # same responses
    assert results["ref"]["quality"]["all"]["first_error_agreement"] == 1.0
