"""Numbers as people read them: one formatter for the progress line, chart ticks and titles, the compare
view and diagnostics messages, readable when a run diverges (1e+30, not
`53753545417083351274069426176.0000`; `2e+17`, not `2e+17M`; `nan`, not an exception).

- `format_number(v)`: 4 significant digits (`0.04034`, `1.386`, `12,345`), scientific beyond a million
  or below 1e-4 (`5.375e+28`, `3e-05`).
- `format_number(v, decimals=4)`: fixed decimals where they line up (`0.0403`), the same scientific form
  outside [0.001, 1e6).
- `format_number(v, compact=True)`: axis labels (`750`, `1.5k`, `2.5M`, `3B`, `2e+17`).
- `format_ratio(r)`: a share of something: `45%`, `250%`, and `27,468x` once percentages stop reading.
Non-finite values read `nan`, `inf`, `-inf`; None reads `n/a`.
"""

from __future__ import annotations

import math

SCIENTIFIC_ABOVE = 1e6
SCIENTIFIC_BELOW = 1e-4
_SUFFIXES = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3))


def _scientific(value: float, digits: int) -> str:
    mantissa, _, exponent = f"{value:.{max(0, digits - 1)}e}".partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exponent}"


def format_number(value: float | int | None, *, digits: int | None = None, decimals: int | None = None,
                  compact: bool = False) -> str:
    """One number for a person to read (see the module docstring for the three styles); `digits` are
    significant digits (4 by default, 3 for compact labels)."""
    if digits is None:
        digits = 3 if compact else 4
    if value is None:
        return "n/a"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if compact:
        if magnitude >= 1e15 or magnitude < SCIENTIFIC_BELOW:
            return _scientific(value, digits)
        for suffix, size in _SUFFIXES:
            if magnitude >= size:
                return f"{value / size:.{digits}g}{suffix}"
        return f"{value:.{digits}g}"
    if decimals is not None:
        if 1e-3 <= magnitude < SCIENTIFIC_ABOVE:
            return f"{value:,.0f}" if magnitude >= 1e4 else f"{value:.{decimals}f}"
        return _scientific(value, digits)
    if magnitude >= SCIENTIFIC_ABOVE or magnitude < SCIENTIFIC_BELOW:
        return _scientific(value, digits)
    if magnitude >= 10 ** digits:  # 12,345 rather than 1.234e+04
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_ratio(ratio: float | None) -> str:
    """A fraction as a percentage while that reads (`45%`, `250%`), as a multiple beyond (`27,468x`)."""
    if ratio is None or not math.isfinite(ratio):
        return format_number(ratio)
    if abs(ratio) < 10:
        return f"{ratio:.0%}"
    return f"{format_number(ratio, digits=3) if abs(ratio) >= SCIENTIFIC_ABOVE else f'{ratio:,.0f}'}x"
