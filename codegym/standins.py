"""Tiny local stand-ins of real model families, for tests and docs.

A stand-in is a checkpoint directory that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load like a downloaded model, built here in seconds with
nothing downloaded:

* a random-init model of a real architecture (``Qwen2ForCausalLM``, ``LlamaForCausalLM``,
  ``GPTNeoXForCausalLM`` or ``GPT2LMHeadModel``), a few layers wide;
* a byte-level BPE tokenizer trained on the fly on code, with the pre-tokenizer rules of a
  real family — which decide how newlines and indentation become tokens:

  ============  ===================================================================
  style         what it does to code
  ============  ===================================================================
  ``codegym``   ``"\\n"`` is always a token of its own (codegym's own tokenizers)
  ``qwen2``     Qwen2's regex: newline runs group (``\\s*[\\r\\n]+``: ``"\\n\\n"`` can
                be one token), punctuation absorbs a following newline (``":\\n"``),
                one digit per token
  ``llama3``    Llama-3's regex (as Qwen2's, digits in groups of up to three), and a
                BOS token ``<|begin_of_text|>`` added to every encoded text
  ``starcoder``  GPT-2's regex with digits split one by one (StarCoder): whitespace runs
                ``\\s+(?!\\S)`` merge a newline with the next line's indentation, so
                tokens such as ``"\\n   "`` exist
  ============  ===================================================================

* optionally an **instruct** variant: the same vocabulary with a Jinja chat template in the
  tokenizer config, the end-of-turn token as ``eos_token`` and a generation config with two
  EOS ids (end of turn and end of text), as instruct checkpoints ship;
* optionally a brief **pretraining** on whole code documents (prompts + reference solutions
  of the ``pipelines`` suite, each closed by the EOS token; chat-formatted for instruct
  stand-ins) — a few seconds on one CPU core — so that the model writes plausible code and
  ends a program with EOS instead of emitting noise.

One function builds any of them::

    from codegym.standins import build_standin

    path = build_standin("runs/qwen-tiny", arch="qwen2", tokenizer="qwen2", instruct=True)
    model = AutoModelForCausalLM.from_pretrained(path)      # Qwen2ForCausalLM
    tok = AutoTokenizer.from_pretrained(path)               # chat template, two EOS ids

:data:`FAMILIES` names the natural pairs (``"qwen2"``, ``"llama3"``, ``"starcoder"``,
``"codegym"``); every architecture works with every tokenizer style.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from codegym.lm import FAST_GELU, quiet_hf
from codegym.precision import resolve_dtype

ARCHITECTURES = ("qwen2", "llama", "gpt_neox", "gpt2")
TOKENIZER_STYLES = ("qwen2", "llama3", "starcoder", "codegym")

#: Qwen2's pre-tokenizer split (tokenizer.json ``Split`` pattern; single digits).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
#: Llama-3's pre-tokenizer split (tiktoken cl100k-style; digits in groups of up to 3).
LLAMA3_PATTERN = QWEN2_PATTERN.replace(r"|\p{N}|", r"|\p{N}{1,3}|")

#: Natural (architecture, tokenizer style) pairs, by family name.
FAMILIES: dict[str, tuple[str, str]] = {
    "qwen2": ("qwen2", "qwen2"),
    "llama3": ("llama", "llama3"),
    "starcoder": ("gpt_neox", "starcoder"),
    "codegym": ("gpt2", "codegym"),
}

_CHATML = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a careful Python programmer.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
_LLAMA3_CHAT = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif -%}"
)


@dataclass(frozen=True)
class _Style:
    """Special tokens and chat format of a tokenizer style."""

    eos: str
    chat_eos: str
    specials: tuple[str, ...]
    chat_template: str
    bos: str | None = None
    pad: str | None = None


_STYLES: dict[str, _Style] = {
    "qwen2": _Style("<|endoftext|>", "<|im_end|>", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                    _CHATML, pad="<|endoftext|>"),
    "llama3": _Style("<|end_of_text|>", "<|eot_id|>",
                     ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                      "<|eot_id|>"), _LLAMA3_CHAT, bos="<|begin_of_text|>"),
    "starcoder": _Style("<|endoftext|>", "<|im_end|>", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                        _CHATML, bos="<|endoftext|>"),
    "codegym": _Style("<|endoftext|>", "<|im_end|>", ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"),
                      _CHATML, pad="<|pad|>"),
}  # fmt: skip


@dataclass(frozen=True)
class StandinSpec:
    """What :func:`build_standin` builds. Every field is saved in ``standin.json``."""

    arch: str = "qwen2"
    """``"qwen2"``, ``"llama"``, ``"gpt_neox"`` or ``"gpt2"``."""
    tokenizer: str = "qwen2"
    """Tokenizer style: ``"qwen2"``, ``"llama3"``, ``"starcoder"`` or ``"codegym"``."""
    instruct: bool = False
    """Instruct variant: chat template, end-of-turn EOS, two EOS ids in the generation config."""
    vocab_size: int = 512
    """BPE vocabulary learnt from the corpus (the special tokens come on top)."""
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention; Qwen2 and Llama only)."""
    intermediate_size: int = 176
    max_positions: int = 1024
    pretrain_steps: int = 120
    """AdamW steps on whole documents (0: random init only)."""
    pretrain_tasks: int = 200
    """``pipelines`` train tasks in the corpus (also the tokenizer's training text)."""
    dtype: str = "fp32"
    """Precision the weights are saved in (``"fp32"``, ``"bf16"``, ``"fp16"``)."""
    seed: int = 0

    def validate(self) -> StandinSpec:
        """Return self, or raise ``ValueError`` naming the bad field and the choices."""
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not a stand-in architecture; use one of {ARCHITECTURES}")
        if self.tokenizer not in TOKENIZER_STYLES:
            raise ValueError(f"tokenizer {self.tokenizer!r} is not a tokenizer style; use one of {TOKENIZER_STYLES}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                     "intermediate_size", "max_positions", "pretrain_tasks"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size must be >= 300 (256 bytes + merges), got {self.vocab_size}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads}) "
                f"and num_heads by num_kv_heads ({self.num_kv_heads})"
            )
        if self.pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be >= 0, got {self.pretrain_steps}")
        resolve_dtype(self.dtype, flag="dtype", allow_auto=False)
        return self


# ----------------------------------------------------------------------------- tokenizers
def _pre_tokenizer(style: str) -> Any:
    from tokenizers import Regex, pre_tokenizers

    if style == "codegym":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])  # fmt: skip
    if style == "starcoder":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])  # fmt: skip
    pattern = QWEN2_PATTERN if style == "qwen2" else LLAMA3_PATTERN
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])  # fmt: skip


def train_family_tokenizer(
    texts: list[str], style: str = "qwen2", vocab_size: int = 512, instruct: bool = False
) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` with the rules of a real family.

    The special tokens are appended after the learnt vocabulary (as real families number
    them), base and instruct share one vocabulary, and the instruct variant differs only in
    its configuration: ``eos_token`` is the end-of-turn token and a chat template is set.

    Args:
        texts: Training text.
        style: A :data:`TOKENIZER_STYLES` name.
        vocab_size: Learnt vocabulary (bytes + merges), >= 300.
        instruct: Configure the instruct variant.

    Returns:
        A ``PreTrainedTokenizerFast``.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    spec = StandinSpec(tokenizer=style, vocab_size=vocab_size).validate()
    tok = Tokenizer(models.BPE())
    if style == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer(style)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer=trainer)
    st = _STYLES[style]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in st.specials])
    if st.bos is not None and style == "llama3":  # Llama-3 prepends BOS to every text
        bos_id = tok.token_to_id(st.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{st.bos} $A", pair=f"{st.bos} $A {st.bos} $B", special_tokens=[(st.bos, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=st.bos,
        eos_token=st.chat_eos if instruct else st.eos,
        pad_token=st.pad,
        unk_token=None,
        chat_template=st.chat_template if instruct else None,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )


# ------------------------------------------------------------------------------- models
def build_family_model(spec: StandinSpec, tokenizer: Any) -> Any:
    """A random-init causal LM of ``spec.arch`` sized for ``tokenizer`` (seeded, private RNG)."""
    import transformers as tf

    spec.validate()
    st = _STYLES[spec.tokenizer]
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.convert_tokens_to_ids(st.bos or st.eos),
        "eos_token_id": tokenizer.convert_tokens_to_ids(st.eos),
        "pad_token_id": tokenizer.pad_token_id,
    }
    h, n, heads = spec.hidden_size, spec.num_layers, spec.num_heads
    if spec.arch == "gpt2":
        config = tf.GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_inner=spec.intermediate_size,
                               n_positions=spec.max_positions, activation_function=FAST_GELU, **ids)  # fmt: skip
        cls = tf.GPT2LMHeadModel
    elif spec.arch == "gpt_neox":
        config = tf.GPTNeoXConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                                  intermediate_size=spec.intermediate_size, max_position_embeddings=spec.max_positions,
                                  rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False, **ids)  # fmt: skip
        cls = tf.GPTNeoXForCausalLM
    else:
        common = dict(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                      num_key_value_heads=spec.num_kv_heads, intermediate_size=spec.intermediate_size,
                      max_position_embeddings=spec.max_positions, **ids)  # fmt: skip
        if spec.arch == "qwen2":  # Qwen2-0.5B/1.5B tie the LM head to the embedding
            config, cls = tf.Qwen2Config(tie_word_embeddings=True, **common), tf.Qwen2ForCausalLM
        else:
            config, cls = tf.LlamaConfig(tie_word_embeddings=False, **common), tf.LlamaForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = cls(config)
    return model


def generation_config(spec: StandinSpec, tokenizer: Any) -> Any:
    """The ``GenerationConfig`` a checkpoint of this kind ships: one EOS id for a base model,
    ``[end of turn, end of text]`` for an instruct one."""
    from transformers import GenerationConfig

    st = _STYLES[spec.tokenizer]
    eos = tokenizer.convert_tokens_to_ids(st.eos)
    eos_ids: int | list[int] = [tokenizer.convert_tokens_to_ids(st.chat_eos), eos] if spec.instruct else eos
    return GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids(st.bos or st.eos),
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )


# ----------------------------------------------------------------------------- corpus
@functools.lru_cache(maxsize=8)
def code_documents(n_tasks: int = 200, split: str = "train", seed: int = 0) -> tuple[tuple[str, str], ...]:
    """``(prompt, program)`` pairs of the ``pipelines`` suite: the task's prompt and the
    whole program the reference solution makes (code prefix + solution lines). Cached: the
    suite is deterministic."""
    from codegym.tasks import load_suite

    suite = load_suite("pipelines", seed=seed)
    return tuple((task.prompt, task.program(task.solution_lines)) for task in suite.take(n_tasks, split=split))


def render_document(tokenizer: Any, prompt: str, program: str, instruct: bool) -> str:
    """One training document as text, its end token included.

    Base: the program itself (for ``pipelines`` the prompt *is* the code prefix), then EOS.
    Instruct: the chat template's rendering of the prompt as a user turn with the assistant
    turn opened, then the program, then the end-of-turn token.
    """
    if not instruct:
        body = program if program.startswith(prompt) else prompt + "\n" + program
        return body + tokenizer.eos_token
    turn = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return turn + program + tokenizer.eos_token


# ----------------------------------------------------------------------------- pretraining
@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` did."""

    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def pretrain(
    model: Any,
    tokenizer: Any,
    documents: list[str],
    steps: int = 120,
    batch_size: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
) -> PretrainResult:
    """Next-token training on whole documents (one document per row, right-padded).

    Each text is encoded as a model would see it in use (``add_special_tokens=True``: a BOS
    where the tokenizer adds one); padding positions carry no loss. The model is left in
    eval mode.

    Args:
        model: A causal LM (trained in place, fp32).
        tokenizer: Its tokenizer.
        documents: Texts, each ending in the token that should end generation.
        steps: AdamW steps.
        batch_size: Documents per step.
        lr: Peak learning rate (linear decay to 10 %).
        seed: Seed of the document order (a private generator).

    Raises:
        ValueError: ``steps`` < 1, no documents, or a document longer than the model accepts.
    """
    if steps < 1 or not documents:
        raise ValueError(f"pretrain needs steps >= 1 and documents; got steps={steps}, {len(documents)} documents")
    encoded = tokenizer(documents, add_special_tokens=True)["input_ids"]
    limit = int(getattr(model.config, "max_position_embeddings", None) or model.config.n_positions)
    longest = max(len(ids) for ids in encoded)
    if longest > limit:
        raise ValueError(f"a document has {longest} tokens but the model accepts {limit}; raise max_positions")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.9 * s / steps)
    model.train()
    start, losses = time.perf_counter(), []
    for _ in range(steps):
        rows = [encoded[int(i)] for i in torch.randint(len(encoded), (batch_size,), generator=gen)]
        ids, labels, mask = _pad_rows(rows, pad_id=int(tokenizer.pad_token_id or 0))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return PretrainResult(steps, losses[0], sum(losses[-10:]) / len(losses[-10:]), time.perf_counter() - start)


def _pad_rows(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad ``rows``: ``(input_ids, labels with -100 on padding, attention_mask)``, each [B, T]."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)  # (B, T)
    return ids, labels, mask


# ----------------------------------------------------------------------------- one call
SPEC_FILE = "standin.json"


def build_standin(out: str | Path, spec: StandinSpec | None = None, **overrides: Any) -> Path:
    """Build (or reuse) a stand-in checkpoint directory and return its path.

    Args:
        out: Directory to write (created). If it already holds a stand-in built from the
            same spec (``standin.json``), it is returned as it is: a session-scoped test
            fixture or a docs example pays the build once.
        spec: What to build (default :class:`StandinSpec`).
        **overrides: Fields of :class:`StandinSpec` to change, e.g. ``arch="llama",
            tokenizer="llama3", instruct=True, pretrain_steps=0``.

    Returns:
        ``out``, loadable by ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained``
        and by :func:`codegym.lm.load_causal_lm`; ``standin.json`` records the spec and the
        pretraining losses.

    Raises:
        ValueError: An unknown field or a bad value (named, with the choices).
    """
    known = {f.name for f in fields(StandinSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown stand-in field(s) {unknown}; known: {sorted(known)}")
    spec = replace(spec or StandinSpec(), **overrides).validate()
    out = Path(out)
    record = out / SPEC_FILE
    if record.is_file() and json.loads(record.read_text()).get("spec") == asdict(spec):
        return out
    docs = code_documents(spec.pretrain_tasks, seed=spec.seed)
    tok = train_family_tokenizer([p for _, p in docs], spec.tokenizer, spec.vocab_size, spec.instruct)
    model = build_family_model(spec, tok)
    result = None
    if spec.pretrain_steps:
        texts = [render_document(tok, prompt, program, spec.instruct) for prompt, program in docs]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)  # dropout, if any
            result = pretrain(model, tok, texts, steps=spec.pretrain_steps, seed=spec.seed)
    model.generation_config = generation_config(spec, tok)
    dtype = resolve_dtype(spec.dtype, allow_auto=False)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_hf():
        model.to(dtype).save_pretrained(out)
        tok.save_pretrained(out)
    meta = {"spec": asdict(spec), "pretrain": asdict(result) if result else None}
    record.write_text(json.dumps(meta, indent=2))
    return out
