"""The one set of argument validators of rethink.

Every public function checks its arguments here, where the value enters, so that a bad value
raises a ValueError that names the argument, the value and what is allowed, before anything
is computed, trained or written. ``bool`` is never accepted as a number (``True`` is an int
in Python, never a count or a seed here); numpy integers and floats are accepted and returned
as Python ``int`` / ``float``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["check_number", "check_int", "check_seed", "check_choice", "check_path", "check_shape", "SEED_LIMIT"]

#: Seeds are integers in [0, SEED_LIMIT): what the kernels' 64-bit counters take.
SEED_LIMIT = 2**63


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _is_bool_like(value)


def _is_bool_like(value: Any) -> bool:
    return type(value).__name__ in ("bool_", "bool")  # numpy.bool_


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number (an integer with
    ``integer``) within the given bounds (``low``/``high`` inclusive unless ``*_open``)."""
    ok = _is_real(value) and math.isfinite(value)
    if ok and integer:
        ok = isinstance(value, numbers.Integral) or float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        rng = []
        if low is not None:
            rng.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            rng.append(f"{'<' if high_open else '<='} {high:g}")
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}{' ' + ' and '.join(rng) if rng else ''}, got {value!r}")


def check_int(name: str, value: Any, *, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as an int with ``low <= value <= high`` (a whole integer type: 2.0 is refused
    too, as a count given as a float is usually a mistake), else ValueError naming ``name``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and not _is_bool_like(value)
    if ok:
        v = int(value)
        ok = (low is None or v >= low) and (high is None or v <= high)
    if not ok:
        rng = " and ".join(s for s in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "")
                           if s)
        raise ValueError(f"{name} must be an integer{' ' + rng if rng else ''}, got {value!r}")
    return int(value)


def check_seed(name: str, value: Any) -> int:
    """``value`` as an int in [0, 2^63) (what the kernels' 64-bit counters take), else ValueError."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and not _is_bool_like(value)
    if not ok or not 0 <= int(value) < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2^63), got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` when it is one of ``allowed``, else ValueError listing them."""
    allowed = list(allowed)
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value in a set
        ok = False
    if not ok:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(map(repr, allowed))}")
    return value


def check_path(name: str, value: Any):
    """``value`` as a ``pathlib.Path`` when it is a str or os.PathLike (not empty), else ValueError."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise ValueError(f"{name} must be a path (a str or os.PathLike), got {type(value).__name__} {value!r:.60}")
    return Path(value)


def check_shape(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints (of ``length`` entries when given), else ValueError."""
    ok = isinstance(value, (tuple, list)) and (length is None or len(value) == length) and len(value) > 0
    if ok:
        ok = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        want = f"{length} positive integers" if length is not None else "a tuple of positive integers"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return tuple(int(v) for v in value)
