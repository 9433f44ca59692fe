"""Parameter checks, in one place: the rewards call them at construction, the run's configuration check wraps them.

- :func:`number_problem` says what is wrong with a number (``"must be a finite number > 0"``), or ``None``;
  :func:`ume_rl.training.validation.validate_config` adds the field's source and the fix;
- :func:`check_real` raises ``TypeError`` unless a value is a real number;
- :func:`check_penalty_and_max_chars` checks the parameters every auxiliary reward shares.

>>> number_problem(0.0, above=0)
'must be a finite number > 0'
>>> number_problem(3, integer=True, minimum=1) is None
True
>>> check_penalty_and_max_chars(penalty=float("nan"), max_chars=None)
Traceback (most recent call last):
...
ValueError: penalty must be finite, got nan: None leaves invalid completions unscored
"""

from __future__ import annotations

import math
import numbers


def number_problem(
    value,
    *,
    integer: bool = False,
    minimum: float | None = None,
    above: float | None = None,
    optional: bool = False,
    allowed: tuple = (),
) -> str | None:
    """What is wrong with ``value`` as a finite real (or integer) with ``value >= minimum`` / ``value > above``.

    Args:
        value: the value to check (``bool`` and numeric strings are not numbers).
        integer: require an integer.
        minimum: smallest allowed value.
        above: ``value`` must be greater than this.
        optional: ``None`` is fine.
        allowed: values accepted as they are (``max_steps=-1``).

    Returns:
        ``None`` when fine, else the problem (``"must be an integer >= 1"``).
    """
    if value is None and optional:
        return None
    if value in allowed and not isinstance(value, bool):
        return None
    kind = "an integer" if integer else "a finite number"
    wrong_type = isinstance(value, bool) or not isinstance(
        value, numbers.Integral if integer else numbers.Real
    )
    if wrong_type or not math.isfinite(value):
        return f"must be {kind}"
    if minimum is not None and value < minimum:
        return f"must be {kind} >= {minimum}"
    if above is not None and not value > above:
        return f"must be {kind} > {above}"
    return None


def check_real(name: str, value, optional: bool = False) -> None:
    """``TypeError`` unless ``value`` is a real number (``bool`` and numeric strings are not), or ``None`` when
    ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number{' or None' if optional else ''}, got {type(value).__name__} {value!r:.40}"
        )


def check_penalty_and_max_chars(penalty, max_chars) -> None:
    """The parameters every auxiliary reward shares, checked at construction: a finite real ``penalty`` (or
    ``None``: invalid completions unscored) and a positive integer ``max_chars`` (or ``None``: no bound)."""
    check_real("penalty", penalty, optional=True)
    if penalty is not None and not math.isfinite(penalty):
        raise ValueError(f"penalty must be finite, got {penalty}: None leaves invalid completions unscored")
    if number_problem(max_chars, integer=True, minimum=1, optional=True):
        raise ValueError(f"max_chars must be a positive integer or None (no bound), got {max_chars!r:.40}")
