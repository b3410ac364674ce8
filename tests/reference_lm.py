"""A causal LM that continues reference texts, for tests of line boundaries.

:class:`ReferenceLM` is a real ``transformers`` model (a ``PreTrainedModel`` with a config,
weights, ``save_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` once this module is
imported, and a real ``Cache``), not a stand-in for any codegym object. Its forward pass
reads the ids of each row (those of the KV cache the attention mask keeps, then the new ones),
decodes them, and where the text is a prefix of one of its reference texts puts a large logit
on the first token of the tokenizer's encoding of the rest of that text (the end token when
nothing is left, EOS when the text matches no reference). So it writes every reference
exactly as its tokenizer would encode it — merged newlines and indentation, ``"\\n\\n"`` —
from any tokenisation of the text so far (a cache re-encoded by codegym's rule included),
whether codegym samples greedily or at temperature 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from codegym.tasks.base import Task
from codegym.tokenization import encode_context, line_rules, policy_context

MODEL_TYPE = "codegym_reference_lm"


class ReferenceLMConfig(PretrainedConfig):
    """Config of :class:`ReferenceLM`: the reference texts and the id that ends them."""

    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 512, references: Sequence[str] = (), end_id: int = 0,
                 margin: float = 40.0, max_position_embeddings: int = 4096, **kwargs: Any) -> None:  # fmt: skip
        self.vocab_size = int(vocab_size)
        self.references = list(references)
        self.end_id = int(end_id)
        self.margin = float(margin)
        self.max_position_embeddings = int(max_position_embeddings)
        super().__init__(**kwargs)


class ReferenceLM(PreTrainedModel, GenerationMixin):
    """Continues its reference texts (see the module docstring)."""

    config_class = ReferenceLMConfig
    base_model_prefix = "reference"
    _no_split_modules: list[str] = []

    def __init__(self, config: ReferenceLMConfig) -> None:
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, 1)  # (V, 1): a size and a device
        self.head = torch.nn.Linear(1, config.vocab_size, bias=False)
        self.tokenizer: Any = None
        self._memo: dict[tuple[int, ...], int] = {}
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.head

    def _tok(self) -> Any:
        if self.tokenizer is None:
            self.tokenizer = AutoTokenizer.from_pretrained(self.config.name_or_path)
        return self.tokenizer

    def next_id(self, ids: Sequence[int]) -> int:
        """The id this model writes after ``ids``."""
        key = tuple(ids)
        if key not in self._memo:
            self._memo[key] = self._next_id(key)
        return self._memo[key]

    def _next_id(self, ids: Sequence[int]) -> int:
        tok = self._tok()
        text = tok.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        for ref in self.config.references:
            if ref.startswith(text):
                rest = ref[len(text):]
                return int(tok(rest, add_special_tokens=False)["input_ids"][0]) if rest else self.config.end_id
        return int(tok.eos_token_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: Any = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                **kwargs: Any) -> CausalLMOutputWithPast:  # fmt: skip
        batch, n = input_ids.shape
        cache = past_key_values if past_key_values is not None else DynamicCache()
        x = input_ids.float()[:, None, :, None]  # (B, 1, n, 1): ids as "keys"
        keys, _ = cache.update(x, x, 0)  # (B, 1, S, 1)
        ids = keys[:, 0, :, 0].round().long()  # (B, S)
        width = ids.shape[1]
        mask = attention_mask if attention_mask is not None else torch.ones(batch, width, dtype=torch.long)
        if isinstance(logits_to_keep, torch.Tensor):
            cols = logits_to_keep.reshape(batch, -1)  # (B, k)
        else:
            keep = n if logits_to_keep == 0 else int(logits_to_keep)
            cols = torch.arange(n - keep, n).expand(batch, keep)  # (B, k)
        logits = torch.zeros(batch, cols.shape[1], self.config.vocab_size)  # (B, k, V)
        for b in range(batch):
            for j, col in enumerate(cols[b].tolist()):
                end = width - n + col + 1
                seen = ids[b, :end][mask[b, :end].bool()].tolist()
                logits[b, j, self.next_id(seen)] = self.config.margin
        return CausalLMOutputWithPast(logits=logits.to(self.head.weight.dtype), past_key_values=cache)


AutoConfig.register(MODEL_TYPE, ReferenceLMConfig, exist_ok=True)
AutoModelForCausalLM.register(ReferenceLMConfig, ReferenceLM, exist_ok=True)


def reference_text(tokenizer: Any, context: str, lines: Sequence[str]) -> str:
    """What a model writes after ``context`` to produce ``lines``, as the text of the ids
    codegym feeds (the context as :func:`codegym.tokenization.encode_context` encodes it)."""
    head = tokenizer.decode(encode_context(tokenizer, context), skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)  # fmt: skip
    lead = "\n" if line_rules(tokenizer).layout == "newline_first" and context.endswith("\n") else ""
    return head + lead + "".join(line + "\n" for line in lines)


def build_reference_lm(out: str | Path, standin: str | Path, tasks: Sequence[Task], end: str = "eos",
                       chat: Sequence[bool] = (True, False), extra: Sequence[str] = ()) -> Path:  # fmt: skip
    """Save a :class:`ReferenceLM` that writes each task's reference solution (after its
    context with and/or without the chat template), with the tokenizer and generation config
    of the stand-in checkpoint ``standin``.

    Args:
        out: Directory to write.
        standin: A :func:`codegym.standins.build_standin` directory (tokenizer + generation
            config).
        tasks: The tasks whose solutions it writes.
        end: What ends each program: ``"eos"`` (the tokenizer's EOS) or ``"last"`` (the
            generation config's last EOS id, e.g. an instruct model's end of text).
        chat: For which contexts it writes them: read through the chat template (True, for
            an instruct tokenizer) and/or plain (False).
        extra: More reference texts, as they are.
    """
    tok = AutoTokenizer.from_pretrained(standin)
    gen = GenerationConfig.from_pretrained(standin)
    eos_ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    refs = {reference_text(tok, policy_context(tok, t.prompt, t.code_prefix, chat=c), t.solution_lines)
            for t in tasks for c in chat} | set(extra)  # fmt: skip
    config = ReferenceLMConfig(vocab_size=len(tok), references=sorted(refs),
                               end_id=tok.eos_token_id if end == "eos" else eos_ids[-1],
                               eos_token_id=eos_ids, pad_token_id=tok.pad_token_id)  # fmt: skip
    model = ReferenceLM(config)
    model.generation_config = gen
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
