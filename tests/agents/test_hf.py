"""The ``hf`` agent: any causal LM directory, batched sampling with a KV cache, EOS -> SUBMIT."""

from __future__ import annotations

import pytest
import torch

from agents.hf import HFAgent
from codegym.constants import SUBMIT
from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.tasks.base import Task
from codegym.tokenization import encode_program, task_context
from sandboxes import IOCase, TestSuite

PROMPT = 'def solve(xs):\n    """Apply these steps.\n\n    1. add 3 to every element\n    2. return the sum\n    """\n'
SOLUTION = ["    xs = [x + 3 for x in xs]", "    return sum(xs)"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    texts = [PROMPT, "\n".join(SOLUTION) + "\n"] * 20
    return build_tiny_lm_dir(tmp_path_factory.mktemp("lm"), texts, vocab_size=320,
                             config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=512))  # fmt: skip


def _task(i: int = 0) -> Task:
    cases = tuple(IOCase((xs,), sum(x + 3 for x in xs)) for xs in ([1, 2], [], [5]))
    return Task(f"t/{i}", PROMPT, PROMPT, "solve", TestSuite("io", "solve", cases), "\n".join(SOLUTION), {"steps": 2})


def test_batched_acting_keeps_cache_consistent(model_dir) -> None:
    agent = HFAgent(model=str(model_dir), temperature=1.0, top_p=0.9, max_line_tokens=6, seed=1)
    tasks = [_task(0), _task(1), _task(2)]
    obs = [{"prompt": t.prompt, "code": ""} for t in tasks]
    agent.reset_batch(obs, [{"task": t} for t in tasks])
    codes = ["", "", ""]
    for step in range(4):
        live = [o if step < 3 or i != 1 else None for i, o in enumerate(obs)]
        actions = agent.act_batch(live)
        assert len(actions) == 3
        for i, a in enumerate(actions):
            if live[i] is None:
                assert a is None
                continue
            assert isinstance(a, str) and "\n" not in a
            if a != SUBMIT:
                codes[i] += a + "\n"
            obs[i] = {"prompt": tasks[i].prompt, "code": codes[i]}
    s = agent.sampler
    for i, t in enumerate(tasks):
        assert s.valid_ids[i] == encode_program(s.tokenizer, task_context(t), s.lines[i]).input_ids


def test_seed_makes_sampling_reproducible(model_dir) -> None:
    def run(seed: int) -> list[str]:
        agent = HFAgent(model=str(model_dir), max_line_tokens=6, seed=seed)
        agent.reset({"prompt": PROMPT, "code": ""}, {"task": _task()})
        code, out = "", []
        for _ in range(3):
            a = agent.act({"prompt": PROMPT, "code": code})
            out.append(a)
            if a == SUBMIT:
                break
            code += a + "\n"
        return out

    assert run(5) == run(5)


def test_resyncs_when_the_env_changed_the_program(model_dir) -> None:
    agent = HFAgent(model=str(model_dir), greedy=True, max_line_tokens=4)
    agent.reset({"prompt": PROMPT, "code": ""}, {"task": _task()})
    agent.act({"prompt": PROMPT, "code": ""})
    # the env shows a different program than the agent wrote: the agent re-encodes it
    agent.act({"prompt": PROMPT, "code": SOLUTION[0] + "\n"})
    s = agent.sampler
    assert s.lines[0][0] == SOLUTION[0]
    assert s.valid_ids[0] == encode_program(s.tokenizer, task_context(_task()), s.lines[0]).input_ids


def test_needs_a_model() -> None:
    with pytest.raises(ValueError, match="--model"):
        HFAgent()
    with pytest.raises(ValueError, match="does not exist"):
        HFAgent(model="/nonexistent/model/dir")


def test_codegym_eval_with_hf_agent(model_dir, tmp_path) -> None:
    from codegym.cli import main

    out = tmp_path / "traj.jsonl"
    rc = main(["eval", "--agent", "hf", "--model", str(model_dir), "--suite", "pipelines",
               "--min-steps", "1", "--max-steps", "2", "--episodes", "2", "--max-lines", "3",
               "--agent-arg", "max_line_tokens=4", "--out", str(out)])  # fmt: skip
    assert rc == 0
    assert len(out.read_text().splitlines()) == 2
