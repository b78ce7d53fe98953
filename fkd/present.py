"""Tables for readers: one presentation helper the chapters use for every table they show.

``table(frame, caption=...)`` returns a pandas Styler: a caption, no index column unless it means
something, numbers to a sensible precision, missing values as an en dash, and every ``diff``
column (ours minus the paper's) coloured by its sign and size, green where ours is within the
tolerance and shading to red beyond it.
"""
from __future__ import annotations

from typing import Any

DASH = "\u2013"  # what a missing value shows as


def _is_diff(col: Any) -> bool:
    return (col[-1] if isinstance(col, tuple) else col) == "diff"


def _diff_style(value: Any, tolerance: float) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if v != v:  # NaN
        return ""
    if abs(v) <= tolerance:
        return "background-color: #e6f4e6"
    strength = min(1.0, (abs(v) - tolerance) / (4 * tolerance))
    red = int(255 - 40 * strength), int(235 - 120 * strength), int(235 - 120 * strength)
    return f"background-color: rgb{red}"


def table(frame, caption: str | None = None, *, precision: int = 1, index: bool | None = None,
          tolerance: float | None = None, note: str | None = None):
    """``frame`` as a Styler for the page.

    Args:
        caption: shown above the table; say what it shows.
        precision: decimals of the float columns (integers stay integers).
        index: show the index (default: only if it has a name or is not 0..n-1).
        tolerance: colour ``diff`` columns by this tolerance (None: no colouring).
        note: a footnote under the caption, e.g. why some cells are missing.
    """
    import pandas as pd

    if index is None:
        index = bool(frame.index.name or any(frame.index.names)) or not frame.index.equals(pd.RangeIndex(len(frame)))
    styler = frame.style.format(precision=precision, na_rep=DASH)
    if not index:
        styler = styler.hide(axis="index")
    if tolerance is not None:
        diffs = [c for c in frame.columns if _is_diff(c)]
        if diffs:
            styler = styler.map(lambda v: _diff_style(v, tolerance), subset=diffs)
    text = caption or ""
    if note:
        text = f"{text} ({note})" if text else note
    if text:
        styler = styler.set_caption(text)
    return styler.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px"},
        {"selector": "th, td", "props": "padding: 2px 6px; font-size: 0.85em"},
    ], overwrite=False)
