"""Checks of numeric arguments: integers that are integers, finite floats in range.

Each raises :class:`~napari_gr2r.engine.errors.ConfigError` naming the argument, the value
given and what it should be. Numpy integers and floats are accepted; booleans are not numbers
here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import ConfigError


def _hint(what: str) -> str:
    return f" ({what})" if what else ""


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None,
              what: str = "") -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}{_hint(what)} must be a whole number, not {value!r}.")
    value = int(value)
    if value < minimum:
        raise ConfigError(f"{name}{_hint(what)} must be at least {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}{_hint(what)} must be at most {maximum}, not {value}.")
    return value


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False, what: str = "") -> float:
    """``value`` as a finite ``float`` within the given bounds (open or closed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}{_hint(what)} must be a number, not {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name}{_hint(what)} must be a finite number, not {value}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        right = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        if low is None:
            bounds = f"at most {high:g}" if not high_open else f"below {high:g}"
        elif high is None:
            bounds = f"at least {low:g}" if not low_open else f"above {low:g}"
        else:
            bounds = f"in {left}, {right}"
        raise ConfigError(f"{name}{_hint(what)} must be {bounds}, not {value:g}.")
    return value


def check_bool(name: str, value: Any, allow_none: bool = False) -> bool | None:
    """``value`` as a ``bool`` (numpy booleans too)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    allowed = "True, False or None" if allow_none else "True or False"
    raise ConfigError(f"{name} must be {allowed}, not {value!r}.")


def check_sizes(name: str, value: Any, count: int, minimum: int, what: str = "") -> tuple[int, ...]:
    """An int, or a sequence of ``count`` ints (one per network axis), each >= ``minimum``."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ConfigError(
                f"{name}{_hint(what)} needs {count} values for a {count}D model (or one "
                f"number for all axes), not {len(value)}: {tuple(value)!r}."
            )
        return tuple(check_int(name, v, minimum, what=what) for v in value)
    return (check_int(name, value, minimum, what=what),) * count
