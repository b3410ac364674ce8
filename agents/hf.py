"""``hf``: an agent that samples lines from any Hugging Face causal LM.

``codegym eval --agent hf --model DIR`` loads ``AutoModelForCausalLM.from_pretrained(DIR)``
and its tokenizer. Lines are sampled with :class:`codegym.sampling.LineSampler`: a batch of
episodes (one slot per env) shares one KV cache that is kept across the lines of an episode,
so each step costs O(new line). The model's EOS token is mapped to :data:`codegym.SUBMIT`.
Ids follow the tokenisation rule of :mod:`codegym.tokenization`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from agents.base import Agent, Observation
from codegym.constants import SUBMIT
from codegym.tokenization import join_context, task_context

#: Characters a sampled line cannot carry into the env (see ``_sanitize``).
_UNFIT = re.compile("[\x00\r\n\ud800-\udfff" + re.escape(SUBMIT) + "]")


class HFAgent(Agent):
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
    ) -> None:
        from codegym.sampling import LineSampler

        if model is None:
            raise ValueError("the hf agent needs a model: pass --model DIR (a save_pretrained directory)")
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            from codegym.lm import load_causal_lm

            model, tokenizer = load_causal_lm(model, device=device)
        elif tokenizer is None:
            raise ValueError("pass tokenizer= together with a model object")
        gen = torch.Generator(device=next(model.parameters()).device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.seed()))
        self.sampler = LineSampler(
            model.eval(), tokenizer, temperature=float(temperature), top_p=float(top_p),
            greedy=bool(greedy), max_line_tokens=int(max_line_tokens), generator=gen,
        )  # fmt: skip
        self._contexts: list[str] = []
        self.max_line_chars = int(max_line_chars)

    # ---------------------------------------------------------------- single
    def reset(self, obs: Observation, info: dict[str, Any]) -> None:
        """Start one episode (slot 0 of a batch of one)."""
        self.reset_batch([obs], [info])

    def act(self, obs: Observation) -> str:
        """The next line (or SUBMIT) for the single episode."""
        out = self.act_batch([obs])[0]
        return SUBMIT if out is None else out

    # --------------------------------------------------------------- batched
    def reset_batch(self, observations: Sequence[Observation], infos: Sequence[dict[str, Any]]) -> None:
        """Start one episode per slot; encodes every context once into the shared cache."""
        if len(observations) != len(infos):
            raise ValueError(f"reset_batch got {len(observations)} observations but {len(infos)} infos")
        contexts = []
        for obs, info in zip(observations, infos):
            task = info.get("task") if isinstance(info, dict) else None
            contexts.append(task_context(task) if task is not None else join_context(obs["prompt"]))
        self._contexts = contexts
        self.sampler.start(contexts)
        for b, obs in enumerate(observations):
            if obs.get("code"):
                self._resync(b, obs)

    def _resync(self, slot: int, obs: Observation) -> None:
        code = obs.get("code", "")
        lines = code[:-1].split("\n") if code.endswith("\n") else (code.split("\n") if code else [])
        self.sampler.set_slot(slot, self._contexts[slot], lines)

    def act_batch(self, observations: Sequence[Observation | None]) -> list[str | None]:
        """One line per live slot (``None`` observations are finished slots)."""
        if len(observations) != self.sampler.batch_size:
            raise ValueError("act_batch needs reset_batch with the same number of slots first")
        for b, obs in enumerate(observations):
            if obs is None:
                continue
            expected = "".join(line + "\n" for line in self.sampler.lines[b])
            if obs.get("code", "") != expected:  # the env changed the program: re-encode it
                self._resync(b, obs)
        out = self.sampler.next_lines([obs is not None for obs in observations])
        for b, line in enumerate(out):
            if line is None or line == SUBMIT:
                continue
            clean = self._sanitize(line)
            if clean != line:  # keep the cache equal to the program the env will hold
                self.sampler.set_slot(b, self._contexts[b], self.sampler.lines[b][:-1] + [clean], keep_flags=True)
                out[b] = clean
        return [None if obs is None else (SUBMIT if o is None else o) for obs, o in zip(observations, out)]

    def _sanitize(self, line: str) -> str:
        """Fit a sampled line to the env's action space: characters no line can hold (NUL, a
        lone surrogate, a stray ``\\r``) and the SUBMIT character become ``?``; cut at
        ``max_line_chars``. The program then fails its tests as it should, instead of the
        action being refused. Any other Unicode is kept."""
        return _UNFIT.sub("?", line)[: self.max_line_chars]
