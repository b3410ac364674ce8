"""Causal LMs for codegym: loading any checkpoint, inspecting its tokenizer, the tiny-LM stack.

* **Loading** (:func:`load_causal_lm`, :func:`load_tokenizer`): any local Hugging Face
  causal-LM directory, in a chosen precision (``dtype="fp32" | "bf16" | "fp16" | "auto"``) on
  a device that is checked first, with errors that name the real cause (a missing GPU is
  never reported as a corrupt checkpoint).
* **Tokenizer inspection** (:func:`inspect_tokenizer`, :func:`eos_token_ids`): whether a
  newline merges with the next line's indentation or with a second newline, which ids hold a
  newline, and every id that ends a program (the tokenizer's EOS and the generation config's
  list) — what a line sampler needs to know about a tokenizer family.
* **Chunked log-probs** (:func:`token_logprobs_chunked`): log-probs and entropy without a
  ``[tokens, vocab]`` tensor for the whole batch.
* **The tiny-LM stack**: BPE tokenizers trained on the fly (:func:`train_bpe_tokenizer`,
  newline always a token of its own) and GPT-2 models built from a config with a seeded
  random init (:func:`build_causal_lm`, :func:`build_tiny_lm_dir`). Nothing downloads
  anything; both save with ``save_pretrained``. Stand-ins of other families (Qwen2, Llama,
  GPT-NeoX with their own tokenizer rules) are in :mod:`codegym.standins`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codegym.precision import DTypeLike, check_device, resolve_dtype

#: End of a program (mapped to :data:`codegym.constants.SUBMIT` by agents).
EOS_TOKEN = "<|endoftext|>"
#: Padding (never attended to).
PAD_TOKEN = "<|pad|>"


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2
) -> Any:
    """Train a byte-level BPE tokenizer on ``texts``.

    ``"\\n"`` is split off before byte-level pre-tokenisation, so a newline is always a token
    of its own (the line-end token where :mod:`codegym.tokenization` reads line scores) and
    generated line ends never merge with the next line's indentation.

    Args:
        texts: Training text (e.g. prompts and solutions of a suite).
        vocab_size: Target vocabulary size, special tokens included (>= 300: the 256 bytes
            plus a few merges).
        min_frequency: Minimum pair count for a merge.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``eos_token`` and ``pad_token`` set.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )


@dataclass
class TinyLMConfig:
    """Shape of a tiny GPT-2 model built from scratch."""

    n_layer: int = 2
    """Transformer blocks."""
    n_embd: int = 128
    """Hidden size (divisible by ``n_head``)."""
    n_head: int = 4
    """Attention heads."""
    n_positions: int = 1024
    """Longest sequence (context + program) in tokens."""
    dropout: float = 0.0
    """Residual/attention/embedding dropout."""
    seed: int = 0
    """Seed of the random init (a private RNG; the global torch RNG is left untouched)."""


def max_positions(config: Any, default: int = 1 << 30) -> int:
    """Longest sequence a model accepts, from its transformers config (``n_positions`` for
    GPT-2, else ``max_position_embeddings``; ``default`` when it names neither)."""
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or default)


#: GPT-2's tanh-approximated GELU as one fused torch op. ``"gelu_new"`` computes the same
#: function (max |diff| ~2e-7) from five elementwise ops: about 3x slower on CPU, where it was
#: ~15 % of a tiny model's PPO iteration.
FAST_GELU = "gelu_pytorch_tanh"


def fast_activation_kwargs(path: str | Path) -> dict[str, Any]:
    """``from_pretrained`` overrides that swap ``gelu_new`` for :data:`FAST_GELU` (same math)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"activation_function": FAST_GELU} if config.get("activation_function") == "gelu_new" else {}


def build_causal_lm(tokenizer: Any, config: TinyLMConfig | None = None) -> Any:
    """A randomly initialised ``GPT2LMHeadModel`` sized for ``tokenizer``.

    Raises:
        ValueError: ``n_embd`` is not divisible by ``n_head`` or a size is not positive.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = config or TinyLMConfig()
    for name in ("n_layer", "n_embd", "n_head", "n_positions"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if cfg.n_embd % cfg.n_head:
        raise ValueError(f"n_embd ({cfg.n_embd}) must be divisible by n_head ({cfg.n_head})")
    gcfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        activation_function=FAST_GELU,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = GPT2LMHeadModel(gcfg)
    return model


def build_tiny_lm_dir(
    out: str | Path, texts: Iterable[str], vocab_size: int = 512, config: TinyLMConfig | None = None
) -> Path:
    """Train a tokenizer on ``texts``, build a random model and ``save_pretrained`` both.

    Handy for tests and for a PRM base when no SFT checkpoint exists.
    """
    out = Path(out)
    tok = train_bpe_tokenizer(texts, vocab_size=vocab_size)
    model = build_causal_lm(tok, config)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_hf():
        model.save_pretrained(out)
        tok.save_pretrained(out)
    return out


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence transformers' own tqdm bars and advisory warnings for the duration (codegym
    shows one style of progress: rich); the previous settings are restored afterwards."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def check_model_dir(path: str | Path, what: str = "model") -> Path:
    """Return ``path`` as a Path if it holds a Hugging Face checkpoint, a peft adapter
    directory (``adapter_config.json``, see :mod:`codegym.adapters`) or a PRM whose backbone
    lives in another directory (``prm_config.json``, see :mod:`codegym.prm.model`), else
    ``ValueError``."""
    from codegym.adapters import ADAPTER_CONFIG

    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{what} directory {str(p)!r} does not exist; pass a saved checkpoint dir")
    config = p / "config.json"
    for other in (ADAPTER_CONFIG, "prm_config.json"):  # an adapter, a PRM with its backbone elsewhere
        if not config.is_file() and (p / other).is_file():
            config = p / other
    if not config.is_file():
        raise ValueError(
            f"{what} directory {str(p)!r} has no config.json: not a save_pretrained checkpoint "
            f"(nor a peft adapter directory: no {ADAPTER_CONFIG})"
        )
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config}: corrupt JSON ({exc}); restore the file or re-save the model") from None
    return p


@contextlib.contextmanager
def loading(path: str | Path, what: str = "model") -> Iterator[None]:
    """Turn any error of ``from_pretrained`` on a local checkpoint into one ``ValueError``
    naming the directory, the file at fault when known, and what to do.

    Errors that are about the device, not the files (CUDA missing or out of memory), are
    reported as such: a checkpoint is only called corrupt when nothing else explains it.
    """
    try:
        with quiet_hf():
            yield
    except Exception as exc:  # noqa: BLE001 - safetensors, tokenizers and config errors share no base
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise  # already names the checkpoint and the fix
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        device_problem = _device_problem(exc)
        if device_problem:
            raise ValueError(
                f"cannot load the {what} at {str(path)!r}: {device_problem} ({type(exc).__name__}: {detail})"
            ) from None
        culprit = _broken_file(Path(path))
        where = f"{culprit}" if culprit else f"{what} directory {str(path)!r}"
        raise ValueError(
            f"{where}: cannot load the {what} ({type(exc).__name__}: {detail}); the checkpoint is "
            "corrupt or incomplete: restore it, or save/train it again"
        ) from None


def _device_problem(exc: BaseException) -> str | None:
    """What is wrong with the device when ``exc`` says so (no CUDA, out of memory), else None."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "the device is out of memory; use a smaller --dtype (bf16), another device or a smaller model"
    text = str(exc)
    if "CUDA" in text and ("not compiled" in text or "not available" in text or "no CUDA GPUs" in text):
        from codegym.precision import cuda_unavailable_reason

        return f"CUDA is not available ({cuda_unavailable_reason()}); pass --device cpu"
    return None


def _broken_file(path: Path) -> Path | None:
    """The first checkpoint file that does not parse (safetensors header, JSON), or None."""
    for p in sorted(path.glob("*.safetensors")):
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as f:
                for key in f.keys():
                    f.get_slice(key)
        except Exception:  # noqa: BLE001 - any failure means this file is the broken one
            return p
    for p in sorted(path.glob("*.json")):
        try:
            json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return p
    return None


def load_tokenizer(path: str | Path) -> Any:
    """``AutoTokenizer.from_pretrained(path)`` with a pad token guaranteed (EOS if missing),
    its line rules checked (:func:`codegym.tokenization.line_rules`: how its newline tokens
    map to program lines, computed once and cached on the tokenizer).

    Raises:
        ValueError: Missing or corrupt files, no EOS token, or a tokenizer whose lines cannot
            be kept exact (the message says what it merges a newline with).
    """
    from transformers import AutoTokenizer

    from codegym.tokenization import line_rules

    with loading(path, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(str(path))
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer at {str(path)!r} has no EOS token; it cannot end a program")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    try:
        line_rules(tok)
    except ValueError as exc:
        raise ValueError(f"checkpoint {str(path)!r}: {exc}") from None
    return tok


def load_causal_lm(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: DTypeLike | None = "fp32",
    device_flag: str = "--device",
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a local checkpoint dir (eval mode, on ``device``).

    Args:
        path: A ``save_pretrained`` directory (model + tokenizer), or a peft LoRA adapter
            directory: its base model (``base_model_name_or_path``, itself either kind) is
            loaded and the adapter merged into it (:mod:`codegym.adapters`).
        device: Where the model goes; checked first (:func:`codegym.precision.check_device`),
            so a missing GPU is reported as such, not as a broken checkpoint.
        dtype: Weights' precision: ``"fp32"`` (default, whatever the checkpoint holds),
            ``"bf16"``, ``"fp16"`` or ``"auto"`` (the checkpoint's own dtype). To *train* in
            bf16, see :class:`codegym.precision.MixedPrecision`.
        device_flag: The option that set ``device``, named in device errors.

    Raises:
        ValueError: Bad device or dtype, missing/corrupt files, or a tokenizer that does not
            fit the model.
    """
    from transformers import AutoModelForCausalLM

    from codegym.adapters import adapter_base, is_adapter_dir, merge_adapter, require_peft

    dev = check_device(device, flag=device_flag)
    torch_dtype = resolve_dtype(dtype)
    p = check_model_dir(path)
    if is_adapter_dir(p) and not (p / "config.json").is_file():  # a LoRA adapter: base + adapter
        require_peft()
        model, tok = load_causal_lm(adapter_base(p), device=dev, dtype=dtype, device_flag=device_flag)
        with loading(p, "adapter"):
            model = merge_adapter(model, p).eval()
        return model, (load_tokenizer(p) if _has_tokenizer(p) else tok)
    tok = load_tokenizer(p)
    with loading(p, "model"):
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype, **fast_activation_kwargs(p))
    model.to(dev)
    model.eval()
    if model.get_input_embeddings().num_embeddings < len(tok):
        raise ValueError(
            f"checkpoint {str(p)!r}: tokenizer has {len(tok)} tokens but the model's embedding "
            f"has {model.get_input_embeddings().num_embeddings}: they do not belong together"
        )
    return model, tok


def _has_tokenizer(path: Path) -> bool:
    """Whether a directory holds tokenizer files of its own."""
    return any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json"))


def _cache_arg(model: Any) -> str:
    """Name of the KV-cache argument of ``model.forward`` (``cache`` or ``past_key_values``)."""
    import inspect

    name = getattr(model, "_codegym_cache_arg", None)
    if name is None:
        params = inspect.signature(model.forward).parameters
        name = "cache" if "cache" in params else "past_key_values"
        try:
            model._codegym_cache_arg = name
        except AttributeError:  # pragma: no cover - exotic modules
            pass
    return name


def forward_cached(model: Any, cache: Any, **inputs: Any) -> tuple[Any, Any]:
    """``model(**inputs)`` continuing from the KV cache ``cache``; returns ``(output, cache)``.

    Works across transformers versions (the cache argument was renamed from
    ``past_key_values`` to ``cache`` in 5.x).
    """
    name = _cache_arg(model)
    out = model(**inputs, **{name: cache}, use_cache=True)
    new = out.get("cache") if hasattr(out, "get") else None
    if new is None:
        new = out.past_key_values
    return out, new


def _keeps_logits(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (a PEFT wrapper: its base model's)."""
    import inspect

    flag = getattr(model, "_codegym_logits_to_keep", None)
    if flag is None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        flag = "logits_to_keep" in inspect.signature(base.forward).parameters
        try:
            model._codegym_logits_to_keep = flag
        except AttributeError:  # pragma: no cover - exotic modules
            pass
    return bool(flag)


def _per_row_keep() -> bool:
    """Whether this transformers takes a ``[B, k]`` tensor of positions as ``logits_to_keep``
    (older versions index a tensor as shared positions, which would give a wrong shape)."""
    import transformers.modeling_utils as mu

    return hasattr(mu, "slice_logits_to_keep")


def forward_last(model: Any, cache: Any, last: torch.Tensor, **inputs: Any) -> tuple[torch.Tensor, Any]:
    """Like :func:`forward_cached`, but returns only the logits at one position per row.

    The LM head runs on one hidden state per row (``logits_to_keep``, a contiguous
    ``[B, 1, H]``), never on every fed position: feeding a prompt of ``n`` tokens costs
    ``[B, V]`` logits, not ``[B, n, V]`` (a transformers too old for per-row positions, or a
    model without ``logits_to_keep``, gets the full logits, gathered).

    Args:
        model: A causal LM.
        cache: Its KV cache (or None).
        last: ``[B]`` long, the index among the fed ids of the position to keep per row.
        **inputs: ``input_ids``, ``attention_mask``, ``position_ids``.

    Returns:
        ``(logits [B, V], cache)``.
    """
    if _keeps_logits(model):
        n = inputs["input_ids"].shape[1]
        # One position per row, gathered into a new contiguous [B, 1, H] before the head (never
        # a strided slice of [B, n, H]: matmul would copy per row); one fed id is that already.
        keep: int | torch.Tensor | None = 1 if n == 1 else (last[:, None] if _per_row_keep() else None)
        if keep is None and bool((last == n - 1).all()):
            keep = 1  # an older transformers: equal-length rows still keep one position
        if keep is not None:
            out, new = forward_cached(model, cache, logits_to_keep=keep, **inputs)
            return out.logits[:, -1], new  # (B, V)
    out, new = forward_cached(model, cache, **inputs)
    rows = torch.arange(out.logits.shape[0], device=out.logits.device)
    return out.logits[rows, last.to(out.logits.device)], new  # (B, V)


# ------------------------------------------------------------------ tokenizer inspection
#: Code the inspection encodes: indented blocks, a blank line, a docstring, a line ending in
#: ``":"`` (tokenizers differ in what a newline merges with).
PROBE_CODE = (
    'def solve(xs):\n    """Return the total.\n\n    1. add one\n    """\n'
    "    xs = [x + 1 for x in xs]\n\n    if xs:\n        return sum(xs)\n    return 0\n"
)


@dataclass(frozen=True)
class TokenizerReport:
    """How a tokenizer handles line ends, and which ids end a program.

    Computed once per tokenizer by :func:`inspect_tokenizer` (a pass over the vocabulary),
    for samplers that must end a line on whatever token holds its newline.
    """

    newline_indent_merges: bool
    """Encoding code gives a token holding a newline followed by the next line's
    indentation (``"\\n    "``; GPT-2/StarCoder-style ``\\s+(?!\\S)`` whitespace runs): a
    line's last token then carries the start of the next line."""
    double_newline_merges: bool
    """A blank line's ``"\\n\\n"`` is (part of) one token (Qwen2/Llama-3 ``\\s*[\\r\\n]+``):
    one drawn token then ends two lines."""
    newline_after_text: bool
    """Some token holds text *before* its newline (``":\\n"``, ``".\\n\\n"``; Qwen2/Llama-3
    punctuation runs absorb the line end)."""
    lone_newline_id: int | None
    """Id of the token that is exactly ``"\\n"`` (None if the vocabulary has none)."""
    newline_ids: tuple[int, ...]
    """Every id whose text contains a newline (sorted)."""
    eos_ids: tuple[int, ...]
    """Every id that ends a program: the tokenizer's EOS first, then the generation
    config's ``eos_token_id`` list (instruct models have two or more)."""
    special_ids: tuple[int, ...]
    """Ids of all special tokens (BOS, EOS, chat markers, padding): never part of a line."""
    has_chat_template: bool
    """The tokenizer carries a chat template (an instruct model)."""
    probe_pieces: tuple[str, ...]
    """How :data:`PROBE_CODE` splits into tokens (for messages)."""

    @property
    def newline_safe(self) -> bool:
        """Every newline in code is a token of its own (codegym's own tokenizers)."""
        return not (self.newline_indent_merges or self.double_newline_merges or self.newline_after_text)


def eos_token_ids(tokenizer: Any, generation_config: Any = None) -> tuple[int, ...]:
    """Every id that ends generation: ``tokenizer.eos_token_id`` first, then those of the
    generation config (an int or a list), without repeats.

    Args:
        tokenizer: A transformers tokenizer.
        generation_config: A ``GenerationConfig``, a model (its ``generation_config``), a
            checkpoint directory (its ``generation_config.json``, if any) or None.
    """
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen = _generation_config(generation_config)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if extra is not None:
        for i in [extra] if isinstance(extra, int) else list(extra):
            if int(i) not in ids:
                ids.append(int(i))
    return tuple(ids)


def _generation_config(source: Any) -> Any:
    """A ``GenerationConfig`` from a config, a model or a directory (None if there is none)."""
    if source is None:
        return None
    if isinstance(source, str | Path):
        path = Path(source) / "generation_config.json"
        if not path.is_file():
            return None
        from transformers import GenerationConfig

        with loading(path.parent, "generation config"):
            return GenerationConfig.from_pretrained(str(path.parent))
    return getattr(source, "generation_config", source)


def special_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """Ids of every special token: the named ones (BOS, EOS, PAD, ...) and every added token
    marked special (chat markers such as ``<|im_start|>``), sorted."""
    ids = set(tokenizer.all_special_ids)
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids.update(int(i) for i, added in decoder.items() if getattr(added, "special", False))
    return tuple(sorted(ids))


def inspect_tokenizer(tokenizer: Any, generation_config: Any = None) -> TokenizerReport:
    """Inspect how ``tokenizer`` handles newlines and which ids end a program.

    Merges are read from how :data:`PROBE_CODE` actually encodes (what a trained
    vocabulary does with code), the newline ids from the whole vocabulary.

    Args:
        tokenizer: A transformers tokenizer.
        generation_config: Where extra EOS ids come from (see :func:`eos_token_ids`).
    """
    import re

    ids = tokenizer(PROBE_CODE, add_special_tokens=False)["input_ids"]
    pieces = tuple(tokenizer.decode([i]) for i in ids)
    vocab = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])  # one string per id
    newline_ids = tuple(i for i, text in enumerate(vocab) if "\n" in text)
    lone = [i for i in newline_ids if vocab[i] == "\n" and i not in tokenizer.all_special_ids]
    return TokenizerReport(
        newline_indent_merges=any(re.search(r"\n[ \t]", p) for p in pieces),
        double_newline_merges=any("\n\n" in p for p in pieces),
        newline_after_text=any(re.search(r"[^\n]\n", p) for p in pieces),
        lone_newline_id=lone[0] if lone else None,
        newline_ids=newline_ids,
        eos_ids=eos_token_ids(tokenizer, generation_config),
        special_ids=special_token_ids(tokenizer),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        probe_pieces=pieces,
    )


# ------------------------------------------------------------------ chunked log-probs
def token_logprobs_chunked(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_tokens: int = 1024,
    entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of ``targets`` and the entropy, from final hidden states, a chunk at a time.

    ``[tokens, vocab]`` logits exist for at most ``chunk_tokens`` rows at once, in fp32; with
    autograd on, each chunk is checkpointed (its logits are recomputed in the backward pass),
    so the memory of the vocabulary projection is ``chunk_tokens x vocab`` however long the
    batch. Pass only the hidden states of the positions that need a log-prob (the generated
    tokens), not the prompt's. Same values and gradients as the whole-batch computation.

    Args:
        hidden: ``[..., H]`` final hidden states (position ``t`` predicts ``targets[..., t]``).
        head: The output projection (``model.get_output_embeddings()``).
        targets: ``[...]`` token ids.
        temperature: Sampling temperature the log-probs refer to.
        chunk_tokens: Rows per chunk (>= 1).
        entropy: Also compute the entropy (else zeros).

    Returns:
        ``(logprobs, entropy)``, each ``[...]`` in fp32.
    """
    from torch.utils.checkpoint import checkpoint

    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    shape = targets.shape
    flat_h = hidden.reshape(-1, hidden.shape[-1])  # (N, H)
    flat_t = targets.reshape(-1)  # (N,)
    parts = []
    for h, t in zip(flat_h.split(chunk_tokens), flat_t.split(chunk_tokens)):
        if torch.is_grad_enabled() and (h.requires_grad or any(p.requires_grad for p in head.parameters())):
            parts.append(checkpoint(_chunk_stats, h, t, head, temperature, entropy, use_reentrant=False))
        else:
            parts.append(_chunk_stats(h, t, head, temperature, entropy))
    logp = torch.cat([p[0] for p in parts]).reshape(shape)
    ent = torch.cat([p[1] for p in parts]).reshape(shape)
    return logp, ent


def _chunk_stats(
    h: torch.Tensor, t: torch.Tensor, head: torch.nn.Module, temperature: float, entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``t`` and entropy for one chunk: ``h`` (n, H), ``t`` (n,)."""
    logp = torch.log_softmax(head(h).float() / temperature, dim=-1)  # (n, V)
    taken = logp.gather(-1, t.long()[:, None]).squeeze(-1)  # (n,)
    ent = -(logp.exp() * logp).sum(-1) if entropy else torch.zeros_like(taken)  # (n,)
    return taken, ent
