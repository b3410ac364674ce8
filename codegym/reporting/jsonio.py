"""Strict JSON for every file codegym writes: no ``NaN``/``Infinity`` (not JSON).

A metric that is undefined (an empty bucket, a validation split without a class) is written
as ``null``; :func:`dumps` refuses any other non-JSON value.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by ``None``, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        return finite(obj.item())  # numpy / torch scalars
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` (``obj``) with ``allow_nan=False``."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


__all__ = ["dumps", "finite"]
