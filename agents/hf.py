"""``hf``: an agent that samples lines from any Hugging Face causal LM.

``codegym eval --agent hf --model DIR`` loads ``AutoModelForCausalLM.from_pretrained(DIR)``
and its tokenizer. Lines are sampled by :class:`codegym.rollout.SamplerAgent` over a
:class:`codegym.sampling.LineSampler`: a batch of episodes (one slot per env) shares one KV
cache that is kept across the lines of an episode, so each step costs O(new line). Every EOS
id of the model (its tokenizer's and its generation config's) is mapped to
:data:`codegym.SUBMIT`. Ids follow the tokenisation rule of :mod:`codegym.tokenization`,
whatever the tokenizer family; an instruct model reads each task through its chat template
(``--agent-arg chat_template=false`` turns that off).
"""

from __future__ import annotations

from typing import Any

import torch

from agents.base import Agent, Observation
from codegym.constants import SUBMIT
from codegym.lm import load_causal_lm
from codegym.rollout import SamplerAgent
from codegym.sampling import LineSampler


class HFAgent(SamplerAgent, Agent):
    """Samples each line from a causal LM (greedy or temperature/top-p).

    Args:
        model: Checkpoint directory (``save_pretrained`` of a causal LM and its tokenizer),
            or an already loaded model (then pass ``tokenizer``).
        tokenizer: The tokenizer when ``model`` is an object.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus mass in (0, 1].
        greedy: Argmax decoding (temperature/top-p ignored).
        max_line_tokens: A line is cut after this many tokens.
        device: Torch device (``"cpu"``, ``"cuda"``).
        seed: Seed of the agent's torch generator.
        max_line_chars: Lines are cut to this many characters (the env's limit).
        chat_template: Read tasks through the tokenizer's chat template when it has one.
        dtype: Precision of the weights of a model loaded from a directory: ``"fp32"``,
            ``"bf16"``, ``"fp16"`` or ``"auto"`` (the checkpoint's own).
    """

    name = "hf"

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        max_line_tokens: int = 64,
        device: str = "cpu",
        seed: int | None = 0,
        max_line_chars: int = 256,
        chat_template: bool = True,
        dtype: str = "fp32",
    ) -> None:
        if model is None:
            raise ValueError("the hf agent needs a model: pass --model DIR (a save_pretrained directory)")
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
        elif tokenizer is None:
            raise ValueError("pass tokenizer= together with a model object")
        gen = torch.Generator(device=next(model.parameters()).device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.seed()))
        sampler = LineSampler(
            model.eval(), tokenizer, temperature=float(temperature), top_p=float(top_p),
            greedy=bool(greedy), max_line_tokens=int(max_line_tokens), generator=gen,
        )  # fmt: skip
        SamplerAgent.__init__(self, sampler, max_line_chars=max_line_chars, chat_template=chat_template)

    # ---------------------------------------------------------------- single
    def reset(self, obs: Observation, info: dict[str, Any]) -> None:
        """Start one episode (slot 0 of a batch of one)."""
        self.reset_batch([obs], [info])

    def act(self, obs: Observation) -> str:
        """The next line (or SUBMIT) for the single episode."""
        out = self.act_batch([obs])[0]
        return SUBMIT if out is None else out
