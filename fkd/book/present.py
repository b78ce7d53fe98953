"""Tables and figures for readers: the one presentation helper the chapters use for what they show.

``table(frame, caption=...)`` returns a ``Table`` (HTML for the page): a caption, readable headers,
no index column unless it means something, numbers to a sensible precision (integer-valued columns
as integers), missing values as an en dash with a footnote saying why, every ``diff`` column (ours
minus the paper's) coloured by its sign and size, and a table wider than the text column split into
parts, each repeating the index, column groups (ours / paper / diff of one student) kept whole.
``records(frame)`` folds run records into a collapsed details block. ``figure(name, fig)`` glues a
matplotlib figure for a numbered ``{glue:figure}`` caption in the chapter's Markdown, after checking
that its smallest font reads at >= 9 pt at the page's width; ``legible(fig)`` makes a figure so
(``WIDTH`` inches at 100 dpi, no font below ``FONT``), ``colour`` gives each student its colour.
"""
from __future__ import annotations

import html
from typing import Any

from fkd.book.tolerance import TOLERANCE, within

DASH = "\u2013"  # what a missing value shows as
#: the book's text column at a reader's width (CSS pixels); tables are split to fit it
COLUMN_PX = 848
#: the smallest font (pt at 100 % zoom) a figure may use once scaled to the text column
MIN_FONT_PT = 9.0
#: headers that read better than their column names
HEADERS = {"n": "images", "n_images": "images", "eps_label": "eps", "diff_mean": "diff", "paper_mean": "paper",
           "paper_std": "paper std", "clean_acc": "clean accuracy (%)", "epochs_run": "epochs run",
           "wall_time_s": "wall time (s)"}
MISSING_NOTE = f"{DASH}: no value (the paper has none, or the run does not cover it)"


def header(label: Any) -> Any:
    """A column label as a reader's header: ``HEADERS``, else underscores as spaces."""
    if not isinstance(label, str):
        return label
    return HEADERS.get(label, label.replace("_", " "))


def _headers(columns) -> dict:
    """``header`` of each column label (every level), except where it would repeat another label."""
    labels = {x for c in columns for x in (c if isinstance(c, tuple) else (c,))}
    out, taken = {}, set()
    for x in labels:
        h = header(x)
        if h != x and h not in labels and h not in taken:
            out[x] = h
            taken.add(h)
    return out


def _is_diff(col: Any) -> bool:
    return (col[-1] if isinstance(col, tuple) else col) in ("diff", "diff_mean")


def _tolerance(tolerance: float | str | None) -> tuple[float | None, str | None]:
    """(the tolerance as a number, the paper's table it comes from or None) of ``table``'s argument."""
    if tolerance is None or not isinstance(tolerance, str):
        return tolerance, None
    if tolerance not in TOLERANCE:
        raise ValueError(f"unknown tolerance {tolerance!r}: give a number or one of: {', '.join(TOLERANCE)}")
    return TOLERANCE[tolerance], tolerance


def _diff_style(value: Any, tolerance: float, paper_table: str | None = None) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if v != v:  # NaN
        return ""
    if (within(v, paper_table) if paper_table else abs(v) <= tolerance):
        return "background-color: #e6f4e6"
    strength = min(1.0, (abs(v) - tolerance) / (4 * tolerance))
    if v > 0:  # ours above the paper's: red, deeper further away
        rgb = int(255 - 40 * strength), int(235 - 120 * strength), int(235 - 120 * strength)
    else:      # ours below: blue
        rgb = int(235 - 120 * strength), int(240 - 90 * strength), 255
    return f"background-color: rgb{rgb}"


def _text(value: Any, precision: int) -> str:
    if isinstance(value, float):
        return f"{value:.{precision}f}"
    return str(value)


def _width(frame, col, precision: int) -> int:
    """Estimated CSS pixels of one column: its longest header level or value, at the table's font."""
    labels = col if isinstance(col, tuple) else (col,)
    texts = [_text(v, precision) for v in frame[col].head(50)]
    chars = max([len(str(x)) for x in labels[-1:]] + [min(len(t), 30) if " " in t else len(t) for t in texts])
    return 8 * chars + 16  # text with spaces wraps: its column takes about 30 characters


def _parts(frame, precision: int, index_px: int, budget: int) -> list[list]:
    """The columns of ``frame`` in consecutive groups (top header level kept whole) that fit ``budget``."""
    groups: dict[Any, list] = {}
    for col in frame.columns:
        groups.setdefault(col[0] if isinstance(col, tuple) else col, []).append(col)
    parts, current, used = [], [], index_px
    for top, cols in groups.items():
        w = max(sum(_width(frame, c, precision) for c in cols), 8 * len(str(top)) + 16)
        if current and used + w > budget:
            parts.append(current)
            current, used = [], index_px
        current += cols
        used += w
    return parts + [current] if current else parts


def _index_px(frame) -> int:
    """Estimated CSS pixels of the index columns."""
    return sum(max(len(str(n or "")), *(len(str(v)) for v in frame.index.get_level_values(i)[:50])) * 8 + 16
               for i, n in enumerate(frame.index.names))


def _row_key(frame) -> list:
    """The text columns among the first five of ``frame`` that together name each row once (what
    names a row when no index does); [] if they do not."""
    import pandas as pd

    if isinstance(frame.columns, pd.MultiIndex):
        return []
    key = []
    for col in list(frame.columns)[:5]:
        if pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            continue
        key.append(col)
        if not frame.duplicated(subset=key).any():
            return key
    return []


class Table:
    """A table for the page: one or more pandas Stylers (the parts of a split table) and a footnote."""

    def __init__(self, parts: list, note: str | None = None, collapsed: str | None = None):
        self.parts, self.note, self.collapsed = parts, note, collapsed

    def to_html(self) -> str:
        """The HTML of every part, the footnote under them, inside a details block if collapsed."""
        body = "".join(p.to_html() for p in self.parts)
        if self.note:
            body += f'<p class="fkd-note" style="font-size: 0.8em; margin-top: 2px">{html.escape(self.note)}</p>'
        if self.collapsed:
            return f"<details class='fkd-records'><summary>{html.escape(self.collapsed)}</summary>{body}</details>"
        return f"<div class='fkd-table'>{body}</div>"

    _repr_html_ = to_html


def _styled(frame, precision: int, index: bool, tolerance: float | str | None, caption: str):
    import pandas as pd

    ints = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])
            and frame[c].dropna().apply(float.is_integer).all() and frame[c].notna().any()]
    styler = frame.style.format(precision=precision, na_rep=DASH)
    if ints:
        styler = styler.format(precision=0, na_rep=DASH, subset=ints)
    if not index:
        styler = styler.hide(axis="index")
    diffs = [c for c in frame.columns if _is_diff(c)]
    tol, paper_table = _tolerance(tolerance)
    if tol is not None and diffs:
        styler = styler.map(lambda v: _diff_style(v, tol, paper_table), subset=diffs)
    if caption:
        styler = styler.set_caption(caption)
    return styler.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px"},
        {"selector": "th, td", "props": "padding: 2px 6px; font-size: 0.85em"},
    ], overwrite=False)


def table(frame, caption: str | None = None, *, precision: int = 1, index: bool | None = None,
          tolerance: float | str | None = None, note: str | None = None, width: int = COLUMN_PX - 60) -> Table:
    """``frame`` as a Table for the page.

    Args:
        caption: shown above the table; say what it shows.
        precision: decimals of the float columns (integer-valued columns stay integers).
        index: show the index (default: only if it has a name or is not 0..n-1).
        tolerance: colour ``diff`` columns: a paper's table (``"table1"``, ``"table2"``: green where
            ``fkd.book.tolerance.within`` counts the cell as reproduced), a number (green within it),
            or None (no colouring).
        note: a footnote under the table, e.g. why some cells are missing (default where a value is
            missing: ``MISSING_NOTE``).
        width: CSS pixels a part may take; wider tables are split into parts that each fit.
    Returns:
        a Table (Jupyter and the book show its HTML).
    """
    import pandas as pd

    if index is None:
        index = bool(frame.index.name or any(frame.index.names)) or not frame.index.equals(pd.RangeIndex(len(frame)))
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    frame = frame.rename(columns=_headers(frame.columns)).rename_axis(index=[header(n) for n in frame.index.names])
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = frame.columns.set_names([header(n) for n in frame.columns.names])
    else:
        frame.columns.name = header(frame.columns.name)
    if note is None and frame.isna().to_numpy().any():
        note = MISSING_NOTE
    tol, paper_table = _tolerance(tolerance)
    if tol is not None and any(_is_diff(c) for c in frame.columns):
        rounded = " once ours is rounded as the paper prints it" if paper_table else ""
        key = (f"diff = ours \u2212 paper's: green within \u00b1{tol:g}{rounded}, red above, blue below, "
               "deeper further away")
        note = f"{key}. {note}" if note else key
    parts = _parts(frame, precision, _index_px(frame) if index else 0, width)
    if len(parts) > 1 and not index:  # split: the leading text columns name the rows in every part
        key = _row_key(frame)
        if key:
            frame, index = frame.set_index(key), True
            parts = _parts(frame, precision, _index_px(frame), width)
    stylers = [_styled(frame[cols], precision, index, tolerance,
                       (caption or "") + (f" (part {k + 1} of {len(parts)})" if len(parts) > 1 else ""))
               for k, cols in enumerate(parts)]
    return Table(stylers, note)


def records(frame, caption: str = "Run records") -> Table:
    """Run records (``fkd.book.chapters.records_table``) in a collapsed details block: the summary line says how
    many runs and their total wall time; opened, one row per run."""
    minutes = frame["wall time (min)"].sum() if "wall time (min)" in frame.columns else None
    summary = f"{caption}: {len(frame)} run{'s' if len(frame) != 1 else ''}" + (
        f", {minutes:.1f} min of wall time in all" if minutes is not None else "") + " (click to open)"
    t = table(frame, precision=1)
    return Table(t.parts, t.note, collapsed=summary)


def min_font_pt(fig, column_px: int = COLUMN_PX) -> float:
    """The smallest font of ``fig``'s visible text, in pt at 100 % zoom once the figure is shown at
    most ``column_px`` CSS pixels wide (a wider PNG is scaled down to the text column)."""
    fig.canvas.draw()
    # the PNG (saved with a tight box) is shown at one CSS pixel per pixel, up to the column
    width_px = fig.get_tightbbox(fig.canvas.get_renderer()).width * fig.dpi
    scale = min(1.0, column_px / width_px) * fig.dpi / 96  # a pt of the figure in pt of the page
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
             if t.get_visible() and str(t.get_text()).strip()]
    return min(sizes, default=MIN_FONT_PT) * scale


def figure(name: str, fig, column_px: int = COLUMN_PX, show: bool = False):
    """Glue ``fig`` under ``name`` for a ``{glue:figure}`` directive (a numbered caption in the
    chapter's Markdown), then close it, so the book shows it once, under its caption.

    Args:
        show: also show it in the cell, for a reader running the notebook in Jupyter; the cell then
            needs the ``remove-output`` tag, or the book shows the figure twice.

    Raises ValueError if its smallest font would read below ``MIN_FONT_PT`` at the page's width.
    """
    import matplotlib.pyplot as plt
    from myst_nb import glue

    smallest = min_font_pt(fig, column_px)
    if smallest < MIN_FONT_PT - 0.05:
        plt.close(fig)
        raise ValueError(f"figure {name!r}: its smallest font reads {smallest:.1f} pt at the page's width "
                         f"(at least {MIN_FONT_PT:g}); enlarge the font or narrow the figure")
    glue(name, fig, display=show)
    plt.close(fig)


WIDTH = 8.2  # inches: at 100 dpi, a PNG narrower than the book's text column (848 CSS px)
FONT = 9.5   # pt: the smallest font on a figure
#: one colour per model, the same on every figure
COLOURS = {"RT": "0.25", "SD": "tab:blue", "ARD": "tab:orange", "RSLAD": "tab:green", "FD": "tab:red",
           "KDIGA": "tab:purple", "TFKD": "tab:brown", "FDBOTH": "tab:pink"}


def legible(fig, width: float = WIDTH, font: float = FONT):
    """Fit ``fig`` to ``width`` inches (height scaled by at most 3/4) and raise every font below
    ``font`` pt to it; titles too long for their axes (or the figure) are wrapped. Call it before
    the figure's own layout step. Returns the figure."""
    import textwrap

    from matplotlib.text import Text

    w, h = fig.get_size_inches()
    if w > width:
        fig.set_size_inches(width, h * max(width / w, 0.75))
    for ax in fig.axes:
        ax.tick_params(labelsize=font)
        for t in (ax.title, ax._left_title, ax._right_title):
            chars = max(12, int(ax.get_position().width * fig.get_figwidth() * 72 / (0.55 * font)))
            if len(t.get_text()) > chars:
                t.set_text(textwrap.fill(t.get_text().replace("\n", " "), chars))
    for t in fig.findobj(Text):
        if t.get_fontsize() < font:
            t.set_fontsize(font)
    sup = fig._suptitle
    if sup is not None and len(sup.get_text()) > int(fig.get_figwidth() * 72 / (0.55 * sup.get_fontsize())):
        sup.set_text(textwrap.fill(sup.get_text(), int(fig.get_figwidth() * 72 / (0.55 * sup.get_fontsize()))))
    return fig


def colour(student: str) -> str:
    """The figure colour of a model (zoo name or paper column), the same on every figure."""
    return COLOURS.get(student.split("-a")[0].upper(), "0.5")
