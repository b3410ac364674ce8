"""Numeric precision and devices: dtype names, device checks, mixed-precision training.

Three things every command that loads or trains a model needs:

* :func:`resolve_dtype` turns ``"fp32" | "bf16" | "fp16" | "auto"`` (or a ``torch.dtype``)
  into what ``from_pretrained(dtype=...)`` takes, with a ``ValueError`` naming the flag for
  anything else.
* :func:`check_device` refuses a device this machine does not have *before* anything is
  loaded, with the real cause ("CUDA is not available: this torch build has no CUDA support;
  pass --device cpu"), so a missing GPU is never reported as a broken checkpoint.
* :class:`MixedPrecision`: train in bf16 (or fp16) without losing small updates.

Why mixed precision and not a plain bf16 model: bf16 keeps 8 significant bits, so a weight
``w`` only changes when an update exceeds about ``|w| * 2**-9``. A typical weight of 0.02
then ignores every update below ~4e-5, and one AdamW step at lr 1e-6 (which moves each weight
by about 1e-6) leaves ~98 % of a bf16 model's weights exactly as they were, forever. The
recipe here keeps the **trainable weights in fp32** (they are the master weights: the
optimizer and its state are fp32 too) and runs the forward and backward passes under
``torch.autocast`` in bf16, so the matmuls run at bf16 speed while every update lands.
Frozen weights (a LoRA base model, a reference policy) are stored in bf16, since nothing
updates them::

    from codegym.lm import load_causal_lm
    from codegym.precision import MixedPrecision

    model, tok = load_causal_lm(path, dtype="fp32")     # or dtype="bf16": prepare() upcasts
    mp = MixedPrecision("bf16", device="cpu")
    model = mp.prepare(model)             # trainable params -> fp32, frozen params -> bf16
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    with mp.autocast():                   # bf16 matmuls
        loss = model(input_ids=ids, labels=ids).loss
    mp.backward(loss)                     # loss scaling for fp16, plain backward for bf16
    mp.step(opt, max_norm=1.0)            # unscale, clip, step (skips steps with inf grads)
    opt.zero_grad()

Memory: a fully fine-tuned model costs 16 bytes per parameter this way (fp32 weight, fp32
gradient, AdamW's two fp32 moments), the same as keeping bf16 weights plus a separate fp32
master copy (2 + 2 + 4 + 8); autocast additionally holds bf16 copies of the weights it casts
while a forward pass is alive (2 bytes per parameter). What saves memory is training fewer
parameters (LoRA) and storing the frozen ones in bf16 — see ``bench/memory.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

#: Precision names accepted by every ``--dtype`` flag.
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_ALIASES = {
    "float32": "fp32", "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16", "half": "fp16",
}  # fmt: skip
DTypeLike = str | torch.dtype


def resolve_dtype(
    dtype: DTypeLike | None, flag: str = "--dtype", allow_auto: bool = True
) -> torch.dtype | Literal["auto"]:
    """The ``torch.dtype`` named by ``dtype`` (``None`` means fp32).

    Args:
        dtype: ``"fp32"``, ``"bf16"``, ``"fp16"`` (or ``"float32"``, ``"bfloat16"``,
            ``"float16"``, ``"half"``), a floating ``torch.dtype``, or ``"auto"`` (the
            checkpoint's own dtype, as ``from_pretrained(dtype="auto")``).
        flag: Name of the option the value came from, for the error message.
        allow_auto: Accept ``"auto"``.

    Raises:
        ValueError: Any other value.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in DTYPES.values():
            return dtype
        raise ValueError(f"{flag} {dtype} is not a training precision; use one of {list(DTYPES)}")
    name = str(dtype).strip().lower()
    if name == "auto" and allow_auto:
        return "auto"
    name = _ALIASES.get(name, name)
    if name not in DTYPES:
        choices = list(DTYPES) + (["auto"] if allow_auto else [])
        raise ValueError(f"{flag} {dtype!r} is not a precision; use one of {choices}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"`` (the name :func:`resolve_dtype` takes back)."""
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    return str(dtype).removeprefix("torch.")


def check_device(device: str | torch.device, flag: str = "--device") -> torch.device:
    """``device`` as a ``torch.device``, or a ``ValueError`` saying why it cannot be used.

    Checked before any loading, so the error names the real cause: a CUDA request on a
    CPU-only torch build, no visible GPU, a GPU index beyond the ones present, an unknown
    device string.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.
        flag: The option that set it (named in the message, with the value to use instead).

    Raises:
        ValueError: The device does not exist on this machine.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{flag} {device!r} is not a torch device ({exc}); use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA is not available: {cuda_unavailable_reason()}; pass {flag} cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{flag} {device!r}: this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1}); pass one of them or {flag} cpu"
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"MPS (Apple GPU) is not available on this machine; pass {flag} cpu")
    elif dev.type not in ("cpu", "meta"):
        backend = getattr(torch, dev.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise ValueError(f"device type {dev.type!r} is not available here; pass {flag} cpu")
    return dev


def cuda_unavailable_reason() -> str:
    """The reason ``torch.cuda.is_available()`` is False, in words."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    return "no CUDA GPU is visible to this process (driver missing, or CUDA_VISIBLE_DEVICES empty)"


class MixedPrecision:
    """Compute in bf16/fp16, keep trainable weights (and so the optimizer state) in fp32.

    ``MixedPrecision("fp32")`` is a no-op with the same interface, so one training loop
    serves every ``--dtype``.

    Args:
        dtype: Compute precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        device: Device the model runs on (selects the autocast backend).

    fp16 has a narrow exponent range, so it also scales the loss (``torch.amp.GradScaler``):
    :meth:`backward` and :meth:`step` handle that; bf16 needs no scaling.
    """

    def __init__(self, dtype: DTypeLike = "bf16", device: str | torch.device = "cpu") -> None:
        resolved = resolve_dtype(dtype, allow_auto=False)
        self.dtype: torch.dtype = torch.float32 if resolved == "auto" else resolved
        self.device_type = torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)

    @property
    def enabled(self) -> bool:
        """Whether compute runs below fp32."""
        return self.dtype != torch.float32

    def prepare(self, model: nn.Module) -> nn.Module:
        """Cast ``model`` in place: trainable parameters to fp32, frozen ones to the compute
        dtype (buffers such as rotary tables are left as they are). Create the optimizer
        after this call. Returns ``model``."""
        with torch.no_grad():
            for param in model.parameters():
                want = torch.float32 if param.requires_grad or not self.enabled else self.dtype
                if param.dtype != want and param.is_floating_point():
                    param.data = param.data.to(want)
        return model

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for forward passes (training, rollouts, scoring) in the compute dtype."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled for fp16."""
        self.scaler.scale(loss).backward()

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        max_norm: float | None = None,
        params: Iterable[nn.Parameter] | None = None,
    ) -> float | None:
        """Unscale (fp16), clip to ``max_norm`` (if given), step and update the loss scale.

        Args:
            optimizer: The optimizer over the fp32 trainable parameters.
            max_norm: Global gradient-norm clip, or ``None``.
            params: Parameters to clip (default: every parameter of ``optimizer``).

        Returns:
            The gradient norm before clipping when ``max_norm`` is given, else ``None``.
        """
        self.scaler.unscale_(optimizer)
        norm = None
        if max_norm is not None:
            if params is None:
                params = [p for group in optimizer.param_groups for p in group["params"]]
            norm = float(torch.nn.utils.clip_grad_norm_(list(params), max_norm))
        self.scaler.step(optimizer)
        self.scaler.update()
        return norm

    def __repr__(self) -> str:
        return f"MixedPrecision({dtype_name(self.dtype)!r}, device_type={self.device_type!r})"


def check_trainable_dtypes(model: nn.Module) -> None:
    """Refuse a model whose trainable parameters are below fp32 (updates would round away).

    Raises:
        ValueError: Names the first offending parameter and the fix.
    """
    for name, param in model.named_parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            raise ValueError(
                f"trainable parameter {name!r} is {dtype_name(param.dtype)}: small updates round "
                "away (at lr 1e-6 ~98 % of weights never change); call "
                "MixedPrecision(dtype).prepare(model) to keep trainable weights in fp32"
            )
