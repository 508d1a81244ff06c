"""Lines drawn straight into plotext's character matrix as braille dots, every line in one pass.

plotext draws a line by interpolating every segment into points and grouping them into braille cells in
Python, per series: its cost grows with the points and the number of lines. Here a line's points
(already one or two per column) become one vertical span per braille sub-column (the curve is x-sorted,
so what it covers in a column is one interval), turned into braille dots a cell at a time. Overlapping
lines share a cell's dots; the line drawn last gives the cell its colour.
"""

from __future__ import annotations

import math
from typing import Iterable

BRAILLE = 0x2800
# Dot bits of a braille cell by (sub-column, sub-row counted from the bottom).
DOTS = ((0x40, 0x04, 0x02, 0x01), (0x80, 0x20, 0x10, 0x08))
# MASKS[sub-column][a][b]: the dots of sub-rows a..b (from the bottom) in one cell.
MASKS = tuple(tuple(tuple(sum(DOTS[side][r] for r in range(a, b + 1)) for b in range(4)) for a in range(4))
              for side in (0, 1))
NONE = 1 << 30


def column_spans(xs: list[int], lows: list[int], highs: list[int], width: int) -> tuple[list[int], list[int]]:
    """Per sub-column in [0, width): the lowest and highest sub-row a line covers (NONE/-NONE where none).

    Point i spans lows[i]..highs[i] at column xs[i] (x-sorted); consecutive points are joined from the
    previous high to the next low, as the min/max envelope is drawn."""
    bottom = [NONE] * width
    top = [-NONE] * width
    last = width - 1
    prev_x = prev_y = None
    for x, a, b in zip(xs, lows, highs):
        if prev_x is not None and x != prev_x:  # join from the previous point (none at the same column)
            if x == prev_x + 1:  # the common case: neighbouring columns, each takes half the step
                y = round((prev_y + a) / 2)
                for c in (prev_x, x):
                    if 0 <= c <= last:
                        if y < bottom[c]:
                            bottom[c] = y
                        if y > top[c]:
                            top[c] = y
            else:
                x0, y0 = prev_x, prev_y
                slope = (a - y0) / (x - x0)
                for c in range(max(x0, 0), min(x, last) + 1):
                    # the segment's extent across this column: from half a column before to half after it
                    ya = y0 + slope * ((c - 0.5 if c > x0 else x0) - x0)
                    yb = y0 + slope * ((c + 0.5 if c < x else x) - x0)
                    lo, hi = (round(ya), round(yb)) if ya <= yb else (round(yb), round(ya))
                    if lo < bottom[c]:
                        bottom[c] = lo
                    if hi > top[c]:
                        top[c] = hi
        if 0 <= x <= last:
            if a < bottom[x]:
                bottom[x] = a
            if b > top[x]:
                top[x] = b
        prev_x, prev_y = x, b
    return bottom, top


def braille_cells(bottom: list[int], top: list[int], height: int, cells: dict[tuple[int, int], int]) -> list:
    """OR a line's dots into `cells` ({(cell column, cell row): dot bits}); returns the cells it touched."""
    touched = []
    ceiling = height - 1
    for c, (lo, hi) in enumerate(zip(bottom, top)):
        if hi < 0 or lo > ceiling:
            continue
        if lo < 0:
            lo = 0
        if hi > ceiling:
            hi = ceiling
        masks, col = MASKS[c & 1], c >> 1
        first, end = lo >> 2, hi >> 2
        if first == end:  # the common case: the span fits in one cell
            key = (col, first)
            cells[key] = cells.get(key, 0) | masks[lo & 3][hi & 3]
            touched.append(key)
            continue
        for row in range(first, end + 1):
            base = row << 2
            key = (col, row)
            cells[key] = cells.get(key, 0) | masks[lo - base if lo > base else 0][hi - base if hi < base + 3 else 3]
            touched.append(key)
    return touched


def draw_lines(matrix, x_limits: tuple[float, float], y_limits: tuple[float, float], log_y: bool,
               lines: Iterable[tuple[tuple[int, int, int], list[float], list[float], list[float]]]) -> None:
    """Rasterize (colour, xs, lows, highs) lines onto a plotext matrix's canvas.

    y_limits are in plotext's units (log10 of the values on a log axis); lows is highs for plain points."""
    cols, rows = matrix.Cols_canvas, matrix.Rows_canvas
    if not len(cols) or not len(rows):
        return
    x_lo, x_hi = x_limits
    y_lo, y_hi = y_limits
    width, height = len(cols) * 2, len(rows) * 4  # braille: 2x4 dots a cell
    x_scale = (width - 1) / (x_hi - x_lo) if x_hi != x_lo else 0.0
    y_scale = (height - 1) / (y_hi - y_lo) if y_hi != y_lo else 0.0
    floor, log10 = math.floor, math.log10
    cells: dict[tuple[int, int], int] = {}
    colors: dict[tuple[int, int], tuple[int, int, int]] = {}
    for color, x_values, low_values, high_values in lines:
        xs = [floor(0.5 + (x - x_lo) * x_scale) for x in x_values]
        if log_y:
            lows = [floor(0.5 + (log10(y) - y_lo) * y_scale) for y in low_values]
        else:
            lows = [floor(0.5 + (y - y_lo) * y_scale) for y in low_values]
        if high_values is low_values or high_values == low_values:  # points, not buckets: one mapping
            highs = lows
        elif log_y:
            highs = [floor(0.5 + (log10(y) - y_lo) * y_scale) for y in high_values]
        else:
            highs = [floor(0.5 + (y - y_lo) * y_scale) for y in high_values]
        colors.update(dict.fromkeys(braille_cells(*column_spans(xs, lows, highs, width), height, cells), color))
    col0, row0 = cols.start, rows.start
    marker, fullground = matrix.marker, matrix.fullground
    for (col, row), bits in cells.items():
        marker[row0 + row][col0 + col] = chr(BRAILLE + bits)
        fullground[row0 + row][col0 + col] = colors[(col, row)]
