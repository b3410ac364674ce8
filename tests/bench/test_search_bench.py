"""The search bench runs end to end on a tiny budget and writes its tables (figures are the
bench's, never asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import search as bench  # noqa: E402


def test_bench_writes_one_table_per_n(tiny_policy_dir, tiny_prm_dir, tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    result = bench.main(["--policy", str(tiny_policy_dir), "--prm", str(tiny_prm_dir), "--tasks-per-bucket", "1",
                         "--buckets", "1-2,3-3", "--n", "2", "4", "--beams", "2", "--max-lines", "4",
                         "--max-line-tokens", "8", "--oracle-beam", "--out", str(out)])  # fmt: skip
    saved = json.loads(out.read_text())
    assert [t["settings"]["n"] for t in saved["tables"]] == [2, 4] == [t["settings"]["n"] for t in result["tables"]]
    assert [t["settings"]["k"] for t in saved["tables"]] == [1, 2]
    assert saved["tables"][0]["methods"][-2:] == ["beam-oracle", "oracle"]
    assert len(saved["tables"][0]["tasks"]) == 2
    assert "### N = 4" in out.with_suffix(".md").read_text()
