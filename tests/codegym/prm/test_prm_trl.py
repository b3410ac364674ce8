"""TRL interop: ``codegym label --format trl`` rows are read by TRL's PRMTrainer as they are,
tokenised by TRL exactly like codegym's rule, and ``train-prm`` reads TRL data too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from codegym.labeling import LabelConfig, LabelRun, LabelRunConfig, ReferenceCompleter
from codegym.lm import TinyLMConfig, build_tiny_lm_dir, load_tokenizer
from codegym.prm.data import (
    export_trl_jsonl,
    parse_row,
    read_stepwise_jsonl,
    trl_row,
    trl_steps,
)
from codegym.tasks import SuiteConfig
from codegym.tokenization import encode_program, join_context
from sandboxes import make_sandbox

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _prm_trainer():
    pytest.importorskip("trl", reason="TRL is the optional extra codegym[trl]")
    try:
        from trl.experimental.prm import PRMConfig, PRMTrainer
    except ImportError:  # TRL < 0.25 kept it at the top level
        from trl import PRMConfig, PRMTrainer
    return PRMConfig, PRMTrainer


def test_trl_steps_join_neutral_lines() -> None:
    lines = ["    # first", "    xs = xs[::-1]", "", "    return sum(xs)", "    # done"]
    steps, labels = trl_steps(lines, [0, 1, 0, -1, 0])
    assert steps == ["    # first\n    xs = xs[::-1]", "\n    return sum(xs)\n    # done"]
    assert labels == [True, False] and all(type(x) is bool for x in labels)
    assert trl_steps([], []) == ([""], [False])
    assert trl_steps(["# only"], [0], passed=True) == (["# only"], [True])


def test_trl_rows_read_back_as_the_same_examples() -> None:
    row = {"prompt": "def f(xs):\n", "completions": ["  # c", "  xs = 1", "  return xs"],
           "labels": [0, 1, -1], "task_id": "t/1", "first_error": 2}  # fmt: skip
    t = trl_row(row)
    assert t["labels"] == [True, False] and t["completions"] == ["  # c\n  xs = 1", "  return xs"]
    assert parse_row(t, "x") == parse_row(row, "x")
    assert trl_row(t) == t  # idempotent
    # TRL data from elsewhere: boolean labels, multi-line steps split into lines
    foreign = {"prompt": "p", "completions": ["a\nb", "c"], "labels": [True, False]}
    ex = parse_row(foreign, "x")
    assert ex.completions == ["a", "b", "c"] and ex.labels == [0, 1, -1] and ex.first_error == 2
    with pytest.raises(ValueError, match="newline"):
        parse_row({"prompt": "p", "completions": ["a\nb"], "labels": [1]}, "f.jsonl:3")
    with pytest.raises(ValueError, match="line_labels"):
        parse_row({k: v for k, v in t.items() if k != "line_labels"}, "x")


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The same labeling run written in both formats, and a tiny base model."""
    root = tmp_path_factory.mktemp("trl")
    with make_sandbox("local", workers=2) as box:
        for fmt in ("codegym", "trl"):
            cfg = LabelRunConfig(
                suite=SuiteConfig(min_lines=2, max_lines=5), responses=24, seed=1,
                label=LabelConfig(k=2, chunk=2), completer_id="reference", format=fmt,
            )  # fmt: skip
            LabelRun(root / f"{fmt}.jsonl", ReferenceCompleter(0.3), box, cfg).run()
    texts = [r.prompt + "".join(x + "\n" for x in r.completions) for r in read_stepwise_jsonl(root / "codegym.jsonl")]
    base = build_tiny_lm_dir(root / "base", texts * 4, vocab_size=320,
                             config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=512))  # fmt: skip
    return root / "codegym.jsonl", root / "trl.jsonl", base


def test_label_format_trl_writes_booleans_and_keeps_codegym_view(labels) -> None:
    native, trl, _ = labels
    rows = [json.loads(x) for x in trl.read_text().splitlines()]
    assert all(type(v) is bool for r in rows for v in r["labels"])
    assert all(len(r["labels"]) == len(r["completions"]) for r in rows)
    assert any(not all(r["labels"]) for r in rows) and any(all(r["labels"]) for r in rows)
    # train-prm's reader gets the very same examples from either file
    assert read_stepwise_jsonl(trl) == read_stepwise_jsonl(native)
    # and the export of a codegym file equals what --format trl wrote
    out = native.with_name("exported.jsonl")
    assert export_trl_jsonl(native, out) == len(rows)
    strip = lambda r: {k: v for k, v in r.items() if k != "run"}  # noqa: E731
    assert [strip(json.loads(x)) for x in out.read_text().splitlines()] == [strip(r) for r in rows]


def test_trl_label_run_resumes_and_refuses_another_format(labels, tmp_path) -> None:
    native, trl, _ = labels
    part = tmp_path / "part.jsonl"
    part.write_text("".join(trl.read_text().splitlines(keepends=True)[:10]))
    with make_sandbox("local", workers=2) as box:
        cfg = LabelRunConfig(
            suite=SuiteConfig(min_lines=2, max_lines=5), responses=24, seed=1,
            label=LabelConfig(k=2, chunk=2), completer_id="reference", format="trl",
        )  # fmt: skip
        LabelRun(part, ReferenceCompleter(0.3), box, cfg).run()
        assert part.read_bytes() == trl.read_bytes()
        other = LabelRunConfig(**{**cfg.__dict__, "format": "codegym"})
        with pytest.raises(ValueError, match="format: file has 'trl', now 'codegym'"):
            LabelRun(part, ReferenceCompleter(0.3), box, other).resume()
        # a file written before the format key existed resumes as codegym
        old = tmp_path / "old.jsonl"
        rows = [json.loads(x) for x in native.read_text().splitlines()[:3]]
        for r in rows:
            r["run"].pop("format")
        old.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert len(LabelRun(old, ReferenceCompleter(0.3), box, other).resume()) == 3


def test_trl_tokenises_our_rows_like_codegym(labels) -> None:
    _, trl, base = labels
    _, PRMTrainer = _prm_trainer()
    tok = load_tokenizer(base)
    for row in (json.loads(x) for x in trl.read_text().splitlines()):
        got = PRMTrainer.tokenize_row(row, tok, "\n", None, None, False, False)
        enc = encode_program(tok, join_context(row["prompt"]), row["lines"])
        assert got["input_ids"] == enc.input_ids
        code = [i for i, lab in enumerate(row["line_labels"]) if lab != 0]
        pos = [i for i, lab in enumerate(got["labels"]) if lab != -100]
        if code:  # TRL labels sit on our score positions (each code line's last token)
            assert pos == [enc.line_ends[i] for i in code]
            assert [got["labels"][p] for p in pos] == [int(row["line_labels"][i] > 0) for i in code]


def test_trl_prm_trainer_trains_on_our_labels(labels, tmp_path) -> None:
    PRMConfig, PRMTrainer = _prm_trainer()
    from datasets import load_dataset
    from transformers import AutoModelForTokenClassification

    _, trl, base = labels
    torch.manual_seed(0)
    dataset = load_dataset("json", data_files=str(trl), split="train")  # the file as it is
    model = AutoModelForTokenClassification.from_pretrained(str(base), num_labels=2)
    before = model.classifier.weight.detach().clone()
    args = PRMConfig(
        output_dir=str(tmp_path / "trl-out"), max_steps=4, per_device_train_batch_size=4,
        learning_rate=1e-3, report_to="none", save_strategy="no", logging_steps=1, use_cpu=True,
        disable_tqdm=True,
    )  # fmt: skip
    trainer = PRMTrainer(model=model, args=args, train_dataset=dataset, processing_class=load_tokenizer(base))
    out = trainer.train()
    assert out.global_step == 4 and torch.isfinite(torch.tensor(out.training_loss))
    assert not torch.equal(model.classifier.weight.detach(), before)

    # the TRL-trained model drops into codegym: a PRM whose line score is P(true) - P(false)
    import gymnasium as gym

    import codegym  # noqa: F401
    from codegym.prm import ProcessRewardModel, score_programs

    trainer.save_model(str(tmp_path / "trl-prm"))
    load_tokenizer(base).save_pretrained(str(tmp_path / "trl-prm"))
    prm = ProcessRewardModel.from_pretrained(tmp_path / "trl-prm")
    assert prm.objective == "bce"
    row = json.loads(trl.read_text().splitlines()[0])
    enc = encode_program(prm.tokenizer, join_context(row["prompt"]), row["lines"])
    stock = AutoModelForTokenClassification.from_pretrained(str(tmp_path / "trl-prm")).eval()
    with torch.no_grad():
        probs = stock(input_ids=torch.tensor([enc.input_ids])).logits.softmax(-1)[0, enc.line_ends]  # [L, 2]
    ours = score_programs(prm, [join_context(row["prompt"])], [row["lines"]])[0]
    assert abs((probs[:, 1] - probs[:, 0]).numpy() - ours).max() < 1e-5
    env = gym.make("CodePRM-v0", prm=str(tmp_path / "trl-prm"), suite="pipelines")
    obs, info = env.reset(seed=0)
    _, reward, *_ = env.step(info["task"].solution_lines[0])
    assert reward != 0.0  # a dense reward from the TRL-trained PRM
    env.close()


def test_train_prm_reads_trl_data(labels, tmp_path) -> None:
    from codegym.cli import main

    _, trl, base = labels
    rc = main(["train-prm", "--data", str(trl), "--base", str(base), "--out", str(tmp_path / "prm"),
               "--steps", "3", "--batch-size", "4", "--eval-every", "3", "--no-progress"])  # fmt: skip
    assert rc == 0
    res = json.loads((tmp_path / "prm" / "final_metrics.json").read_text())
    assert res["step"] == 3 and res["train_rows"] + res["val_rows"] == 24
