"""The one plain-text table printer of neurosim (inspect, check, circuits, trace listings)."""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["format_table"]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, left: Iterable[int] = ()) -> str:
    """Align ``rows`` under ``headers`` with a dashed rule between them.

    Parameters
    ----------
    headers
        Column titles.
    rows
        One sequence of cells per row (converted with ``str``), as many as ``headers``.
    left
        Indices of left-aligned columns (text); the others are right-aligned (numbers).

    Returns
    -------
    str
        The table, columns separated by two spaces, no trailing blanks.

    Raises
    ------
    ValueError
        If a row has a different number of cells than ``headers``.
    """
    cells = [[str(c) for c in row] for row in rows]
    for i, row in enumerate(cells):
        if len(row) != len(headers):
            raise ValueError(f"table row {i} has {len(row)} cells, expected {len(headers)} "
                             f"(one per header {list(headers)})")
    lefts = set(left)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in lefts else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths])] + [line(r) for r in cells])
