"""Plain-text tables for the command line.

A column whose cells are all numbers (or empty) is numeric: right-aligned,
whole numbers printed as they are, and every fraction in it printed with one
precision (3 decimals where the column's largest fraction is below 10, else
1), so ``10.0`` and ``5.000`` never meet in one column.  Any other column is
text: left-aligned and as wide as its longest cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: What an empty cell (None) shows.
EMPTY = "-"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decimals_for(values: Sequence[Any]) -> int:
    """The one number of decimals for the fractions among ``values``: 3 below 10, else 1."""
    fractions = [abs(v) for v in values if isinstance(v, float)]
    return 3 if not fractions or max(fractions) < 10 else 1


def _column(values: Sequence[Any]) -> tuple[list[str], bool]:
    """The cells of one column as text, and whether the column is numeric (right-aligned)."""
    numeric = all(v is None or _is_number(v) for v in values) and any(v is not None for v in values)
    if not numeric:
        return [EMPTY if v is None else str(v) for v in values], False
    places = decimals_for(values)
    return [EMPTY if v is None else f"{v:.{places}f}" if isinstance(v, float) else str(v) for v in values], True


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return ``rows`` under ``headers`` as an aligned text table (numbers right, text left)."""
    columns = [_column([row[i] for row in rows]) for i in range(len(headers))]
    widths = [max([len(h), *map(len, cells)]) for h, (cells, _) in zip(headers, columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if numeric else c.ljust(w)
                         for c, w, (_, numeric) in zip(cells, widths, columns)).rstrip()

    body = [line([cells[r] for cells, _ in columns]) for r in range(len(rows))]
    return "\n".join([line(headers), line(["-" * w for w in widths]), *body])
