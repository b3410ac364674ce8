"""The embedded default policy and PRM: the shipped files load, match their manifest, and
measure what README and the manifest document; the build that makes them is reproducible."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegym import defaults
from codegym.defaults.build import measure_policy, measure_prm

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def manifest() -> dict:
    return defaults.manifest()


def test_shipped_files_match_the_manifest_and_are_small(manifest):
    files = defaults.verify()
    assert {"policy/model.safetensors", "policy/tokenizer.json", "policy/config.json",
            "prm/model.safetensors", "prm/prm_config.json", "prm/config.json",
            "prm_heldout.jsonl"} <= set(files)
    total = sum(f["bytes"] for f in manifest["files"].values())
    assert total < 10e6, f"embedded defaults take {total / 1e6:.1f} MB"
    # the files are package data: a wheel built from pyproject.toml carries them
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'codegym\s*=\s*\[[^\]]*defaults/', text), "defaults/ missing from package-data"


def test_manifest_records_a_reproducible_build(manifest):
    assert manifest["command"].startswith("codegym defaults build")
    assert manifest["build"]["seed"] == 0 and manifest["threads"] == 1
    assert manifest["policy"]["sft_config"]["steps"] == 3000  # the codegym sft defaults
    assert manifest["prm"]["labels"]["responses"] == manifest["build"]["label_responses"]


def test_shipped_policy_scores_as_documented(manifest):
    """Greedy pass@1 by horizon on the check set, re-measured from the shipped files. Greedy
    decoding is deterministic here; another CPU may flip a near-tie, hence 2 tasks of slack
    per bucket."""
    check = manifest["policy"]["check"]
    got = measure_policy(defaults.policy_dir(), tasks=check["tasks"])
    for bucket, want in check["buckets"].items():
        assert got["buckets"][bucket]["n"] == want["n"]
        assert abs(got["buckets"][bucket]["pass@1"] - want["pass@1"]) <= 2 / want["n"] + 1e-9, (bucket, got, want)
    # the regime RL needs: good on short tasks, imperfect on long ones
    test = manifest["policy"]["test_eval"]["buckets"]
    assert test["1-3"]["pass@1"] >= 0.6 and 0.03 <= test["10-12"]["pass@1"] <= 0.4


def test_shipped_prm_scores_as_documented(manifest):
    want = manifest["prm"]["heldout"]
    got = measure_prm(defaults.prm_dir(), defaults.heldout_path())
    assert got["n"] == want["n"] >= 100
    assert got["auc"] == pytest.approx(want["auc"], abs=0.005)
    assert got["first_error_acc"] == pytest.approx(want["first_error_acc"], abs=0.02)
    assert got["auc"] >= 0.75  # the floor README promises


def test_readme_figures_are_the_manifest_figures(manifest):
    readme = (ROOT / "README.md").read_text()
    assert f"**{manifest['prm']['heldout']['auc']:.3f}**" in readme
    for bucket, v in manifest["policy"]["test_eval"]["buckets"].items():
        assert re.search(rf"\| {re.escape(bucket.replace('-', '–'))} \|", readme), bucket
        assert f"{v['pass@1']:.3f}" in readme, (bucket, v)


def test_default_model_loads_in_seconds_with_an_empty_home(tmp_path):
    """``--model default`` reads the shipped files: nothing is trained, nothing is written to
    the home directory (before, the first use trained the policy for ~14 minutes)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("CODEGYM_SMOKE", None)
    env.pop("CODEGYM_CACHE", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "codegym"), "eval", "--suite", "pipelines", "--agent", "hf",
         "--model", "default", "--agent-arg", "greedy=true", "--episodes", "4"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all" in proc.stdout and "sft" not in proc.stdout.lower()
    assert not any(home.rglob("*")), sorted(str(p) for p in home.rglob("*"))
    print(f"codegym eval --model default, 4 episodes: {time.perf_counter() - start:.1f} s")


@pytest.mark.slow
def test_defaults_build_is_reproducible_on_a_tiny_configuration(tmp_path):
    """Two builds with the same seed give the same files byte for byte (one thread)."""
    from codegym.defaults.build import DefaultsBuildConfig, build_defaults

    tiny_sft = {"steps": 6, "train_tasks": 16, "eval_tasks": 2, "n_layer": 1, "n_embd": 32, "n_head": 2,
                "n_positions": 1024, "vocab_size": 300, "suite": {"max_lines": 3}, "checkpoint_every": 3,
                "batch_size": 4, "warmup_steps": 2, "buckets": "1-3"}
    hashes = []
    for run in ("a", "b"):
        cfg = DefaultsBuildConfig(out=str(tmp_path / run / "out"), work=str(tmp_path / run / "work"),
                                  label_responses=3, heldout_responses=2, k=2, check_tasks=2,
                                  main_job_episodes=0, sft=dict(tiny_sft), prm={"steps": 3, "eval_every": 3},
                                  progress=False)
        man = build_defaults(cfg)
        hashes.append({k: v["sha256"] for k, v in man["files"].items()})
    assert hashes[0] == hashes[1]
    assert json.loads((tmp_path / "a" / "out" / "manifest.json").read_text())["files"]
