"""The PPO learning bench runs end to end on a tiny budget and reports what it measured.

Figures are never asserted (they belong to the bench); this checks the stages connect: the
result file holds the paired before/after figures of the tasks evaluated and the run's rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import ppo_learning as bench  # noqa: E402


def test_bench_runs_and_writes_its_result(tmp_path: Path) -> None:
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.tasks import load_suite

    texts = [t.prompt + t.solution + "\n" for t in load_suite("pipelines", min_steps=1, max_steps=3).take(100, "train")]
    policy = build_tiny_lm_dir(tmp_path / "policy", texts, vocab_size=400, config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2))
    result = bench.main([
        "--work", str(tmp_path / "work"), "--policy", str(policy), "--iterations", "2",
        "--eval-tasks", "4", "--samples", "2", "--run-name", "smoke",
        "--set", "num_prompts=2", "--set", "samples_per_prompt=2", "--set", "num_minibatches=1",
        "--set", "max_new_tokens=32", "--set", "max_lines=4", "--set", "critic_warmup_iterations=1",
    ])  # fmt: skip
    saved = json.loads((tmp_path / "work" / "result-smoke.json").read_text())
    assert saved["iterations"] == result["iterations"] == 2 and saved["eval_tasks"] == 4
    for key in ("pass@1_before", "pass@1_after", "sampled_pass@1_before", "prefix_acc_after"):
        assert 0.0 <= saved[key] <= 1.0, key
    low, high = saved["pass@1_diff_ci95"]
    assert low <= saved["pass@1_diff"] <= high
    assert (tmp_path / "work" / "smoke" / "policy" / "config.json").is_file()
