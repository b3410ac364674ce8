"""Shared fixtures: a tiny policy checkpoint (random 2x64 GPT-2, BPE trained on the fly) and a PRM built on it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2x64 GPT-2 with a BPE tokenizer trained on pipelines prompts + solutions."""
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.tasks import load_suite

    suite = load_suite("pipelines", min_steps=1, max_steps=3, seed=0)
    texts = [t.prompt + t.solution + "\n" for t in suite.take(150, "train")]
    out = tmp_path_factory.mktemp("ppo_policy")
    return build_tiny_lm_dir(out, texts, vocab_size=400, config=TinyLMConfig(n_layer=2, n_embd=64, n_head=2, seed=0))


@pytest.fixture(scope="session")
def tiny_prm_dir(tiny_policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PRM (policy backbone + a seeded random ``score`` head, then perturbed) saved to disk."""
    import torch

    from codegym.prm.model import ProcessRewardModel

    prm = ProcessRewardModel.from_base(tiny_policy_dir, seed=3)
    with torch.no_grad():  # make it differ from the policy backbone, as a trained PRM would
        gen = torch.Generator().manual_seed(1)
        for p in prm.backbone.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
        prm.score.bias.fill_(0.25)
    out = tmp_path_factory.mktemp("ppo_prm")
    prm.save_pretrained(out)
    return out


# ------------------------------------------------------------------ line boundaries
#: Tasks whose reference programs hold what tokenizer families merge differently: blank
#: lines (one and two), nested indentation, a comment, a line ending in ":" and one with
#: trailing spaces, after a HumanEval-style prefix or a prose prompt without one. With the
#: stand-ins' vocabularies, ``"0.\n\n"`` is one Qwen2/Llama-3 token ``".\n\n"`` (two lines
#: end on it) and a blank line before deeper indentation one StarCoder token ``"\n\n    "``.
LINE_TASKS = [
    {"task_id": "lines/0", "entry_point": "total",
     "prompt": 'def total(xs):\n    """Sum of the positive values.\n\n    >>> total([1, -2])\n    1\n    """\n',
     "code_prefix": 'def total(xs):\n    """Sum of the positive values.\n\n    >>> total([1, -2])\n    1\n    """\n',
     "solution": "    out = 0.\n\n    for x in xs:\n\n        if x > 0:\n            out += x\n\n    # done\n    return out\n",
     "tests": {"kind": "io", "cases": [{"args": [[1, -2, 3]], "expected": 4.0}, {"args": [[]], "expected": 0.0}]}},
    {"task_id": "lines/1", "entry_point": "pairs",
     "prompt": "Write a function pairs(xs) that returns the sums of neighbouring values.",
     "solution": "def pairs(xs):\n    return [a + b for a, b in zip(xs, xs[1:])]\n",
     "tests": {"kind": "io", "cases": [{"args": [[1, 2, 4]], "expected": [3, 6]}]}},
    {"task_id": "lines/2", "entry_point": "grid",
     "prompt": 'def grid(n):\n    """Rows of a multiplication table."""\n',
     "code_prefix": 'def grid(n):\n    """Rows of a multiplication table."""\n',
     "solution": "    rows = []  \n    for i in range(1, n + 1):\n        rows.append([i * j for j in range(1, n + 1)])\n\n\n    return rows\n",
     "tests": {"kind": "io", "cases": [{"args": [2], "expected": [[1, 2], [2, 4]]}]}},
]  # fmt: skip
#: (style, instruct) of the stand-ins the line-boundary tests run on.
LINE_STYLES = [(s, i) for s in ("qwen2", "llama3", "starcoder") for i in (False, True)]


@pytest.fixture(scope="session")
def line_suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:data:`LINE_TASKS` as a ``jsonl:`` suite file (test split)."""
    import json

    path = tmp_path_factory.mktemp("line_suite") / "lines.jsonl"
    path.write_text("".join(json.dumps({**t, "split": "test"}) + "\n" for t in LINE_TASKS))
    return path


@pytest.fixture(scope="session")
def line_tasks(line_suite_path: Path) -> list:
    """The tasks of :data:`LINE_TASKS`, loaded as codegym reads them."""
    from codegym.tasks import load_suite

    return load_suite(f"jsonl:{line_suite_path}").take(len(LINE_TASKS), "test")


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory):
    """``standin_dir(style, instruct)``: a random-init stand-in of the style's family (built
    once per session, in about a second)."""
    from codegym.standins import FAMILIES, build_standin

    root = tmp_path_factory.mktemp("standins")

    def make(style: str, instruct: bool = False) -> Path:
        arch = next(a for a, s in FAMILIES.values() if s == style)
        return build_standin(root / f"{style}-{int(instruct)}", arch=arch, tokenizer=style, instruct=instruct,
                             pretrain_steps=0, pretrain_tasks=60, num_layers=1)  # fmt: skip

    return make


@pytest.fixture(scope="session")
def reference_lm_dir(tmp_path_factory: pytest.TempPathFactory, standin_dir, line_tasks):
    """``reference_lm_dir(style, instruct, end="eos")``: a saved ``ReferenceLM`` (see
    tests/reference_lm.py) that writes the reference solution of every line task."""
    from reference_lm import build_reference_lm

    root = tmp_path_factory.mktemp("reference_lms")
    built: dict[tuple[str, bool, str], Path] = {}

    def make(style: str, instruct: bool = False, end: str = "eos") -> Path:
        key = (style, instruct, end)
        if key not in built:
            built[key] = build_reference_lm(root / f"{style}-{int(instruct)}-{end}", standin_dir(style, instruct),
                                            line_tasks, end=end)  # fmt: skip
        return built[key]

    return make


@pytest.fixture(scope="session")
def standin_prm_dir(tmp_path_factory: pytest.TempPathFactory, standin_dir):
    """``standin_prm_dir(style)``: a PRM on the base stand-in of ``style`` (its tokenizer, a
    seeded random head), saved once per session."""
    from codegym.prm.model import ProcessRewardModel

    root = tmp_path_factory.mktemp("standin_prms")
    built: dict[str, Path] = {}

    def make(style: str) -> Path:
        if style not in built:
            prm = ProcessRewardModel.from_base(standin_dir(style, False), seed=1)
            prm.save_pretrained(root / style)
            built[style] = root / style
        return built[style]

    return make
