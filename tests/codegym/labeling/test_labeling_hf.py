"""The HF completer on a tiny GPT-2 built here (random init, BPE trained on the fly)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codegym.cli import main as cli_main
from codegym.labeling import HFCompleter, make_completer
from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.tasks.registry import load_suite


@pytest.fixture(scope="module")
def suite():
    return load_suite("pipelines", min_steps=2, max_steps=4)


@pytest.fixture(scope="module")
def policy(tmp_path_factory, suite) -> Path:
    tasks = suite.take(12, split="train")
    texts = [t.prompt + t.solution + "\n" for t in tasks]
    return build_tiny_lm_dir(
        tmp_path_factory.mktemp("policy"), texts, vocab_size=320,
        config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=512),
    )


def test_completions_are_lines_and_reproducible(policy, suite) -> None:
    task = suite.get("train", 0)
    c = HFCompleter(policy, max_new_tokens=24, max_lines=6)
    prefix = task.solution_lines[:1]
    a = c.complete(task, prefix, 3, np.random.default_rng(5))
    b = c.complete(task, prefix, 3, np.random.default_rng(5))
    assert a == b and len(a) == 3
    for comp in a:
        assert all(isinstance(x, str) and "\n" not in x for x in comp)
        assert len(prefix) + len(comp) <= 6
    assert c.complete(task, prefix, 0, np.random.default_rng(5)) == []
    other = c.complete(task, prefix, 3, np.random.default_rng(6))
    assert other != a  # a random model's samples depend on the seed


def test_bad_policy_and_options_raise_value_error(tmp_path, policy) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        HFCompleter(tmp_path / "missing")
    with pytest.raises(ValueError, match="temperature"):
        HFCompleter(policy, temperature=0)
    with pytest.raises(ValueError, match="needs --policy"):
        make_completer("hf")
    with pytest.raises(ValueError, match="unknown completer"):
        make_completer("nope")


def test_codegym_label_with_the_hf_completer(tmp_path, policy) -> None:
    out = tmp_path / "labels.jsonl"
    argv = [
        "label", "--suite", "pipelines", "--min-steps", "2", "--max-steps", "4",
        "--policy", str(policy), "--responses", "3", "--k", "2", "--workers", "2",
        "--max-new-tokens", "24", "--max-lines", "6", "--threads", "1", "--out", str(out),
    ]
    assert cli_main(argv) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert len(r["labels"]) == len(r["completions"])
        assert r["n_completions"] <= 2 * (r["bound_prefix_checks"] - 1)
        assert r["run"]["completer"].startswith("hf:")
    before = out.read_bytes()
    assert cli_main(argv) == 0  # finished: nothing appended
    assert out.read_bytes() == before


def test_codegym_label_with_a_separate_completer_policy(tmp_path, policy, suite, capsys) -> None:
    """``--completer-policy``: the responses are --policy's (the same as without the flag);
    the completions come from the other model, named in the run's completer id."""
    other = build_tiny_lm_dir(
        tmp_path / "other", [t.prompt + t.solution + "\n" for t in suite.take(12, split="train")],
        vocab_size=300, config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=512, seed=3),
    )  # fmt: skip
    base = ["label", "--suite", "pipelines", "--min-steps", "2", "--max-steps", "4", "--policy", str(policy),
            "--responses", "3", "--k", "2", "--max-new-tokens", "24", "--max-lines", "6", "--threads", "1"]  # fmt: skip
    assert cli_main([*base, "--out", str(tmp_path / "own.jsonl")]) == 0
    assert cli_main([*base, "--completer-policy", str(other), "--out", str(tmp_path / "other.jsonl")]) == 0
    own, helped = ([json.loads(x) for x in (tmp_path / f"{n}.jsonl").read_text().splitlines()] for n in ("own", "other"))
    assert [r["completions"] for r in own] == [r["completions"] for r in helped]
    ident = helped[0]["run"]["completer"]
    assert ident.startswith("responses hf:") and f"completions hf:{other.resolve()}" in ident
    bad = ["label", "--completer", "reference", "--completer-policy", str(other), "--responses", "1",
           "--out", str(tmp_path / "x.jsonl")]  # fmt: skip
    assert cli_main(bad) != 0
    assert "--completer-policy needs --completer hf" in capsys.readouterr().err


@pytest.mark.parametrize(("style", "instruct"), [(s, i) for s in ("qwen2", "llama3", "starcoder") for i in (False, True)])
def test_completions_of_a_model_that_continues_the_reference_are_its_lines(style, instruct, reference_lm_dir,
                                                                           line_tasks) -> None:  # fmt: skip
    """The completer cuts drawn ids into lines as the sampler does (merged newlines,
    indentation and blank lines kept), after any prefix, for every tokenizer family."""
    import numpy as np

    from codegym.labeling.completers import HFCompleter

    completer = HFCompleter(reference_lm_dir(style, instruct), max_new_tokens=120)
    for task in line_tasks:
        lines = task.solution_lines
        for m in (0, 2):
            got = completer.complete(task, lines[:m], 2, np.random.default_rng(m))
            assert got == [lines[m:]] * 2, (task.task_id, m)
    completer.max_lines = 3  # at most 3 lines in all
    assert completer.complete(line_tasks[0], line_tasks[0].solution_lines[:1], 1, np.random.default_rng(0)) == [
        line_tasks[0].solution_lines[1:3]]
