"""The book's table of contents as a reader's list: every chapter of ``_toc.yml`` with its part and
what it shows (the first sentence of its opening paragraph), for the preface.

A chapter (notebook or Markdown page) opens with its title (``# ...``) and a paragraph whose first
sentence says what the chapter shows; ``contents()`` reads both, so a chapter added to ``_toc.yml``
appears in the preface without editing it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from fkd.paths import TOC

TEX = {"\\epsilon": "\u03b5", "\\delta": "\u03b4", "\\alpha": "\u03b1", "\\infty": "\u221e", "\\ell": "\u2113"}


def toc_entries(toc: Path | str = TOC) -> list[tuple[str, Path]]:
    """(part caption, chapter file) for the root and every chapter of ``toc``, in reading order;
    the file is the ``.ipynb`` or ``.md`` that exists."""
    toc = Path(toc)
    part, out = "", []
    for line in toc.read_text().splitlines():
        line = line.strip()
        if line.startswith("- caption:"):
            part = line.removeprefix("- caption:").strip().strip("'\"")
        for key in ("root:", "- file:", "file:"):
            if line.startswith(key):
                name = line[len(key):].strip()
                found = [p for p in (toc.parent / f"{name}.ipynb", toc.parent / f"{name}.md") if p.exists()]
                if found:
                    out.append(("" if key == "root:" else part, found[0]))
                break
    return out


def opening(path: Path | str) -> tuple[str, str]:
    """(title, first sentence of the opening paragraph) of a chapter notebook or Markdown page."""
    path = Path(path)
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
    else:
        text = path.read_text()
    title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), path.stem)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.split(f"# {title}", 1)[-1]) if p.strip()]
    first = " ".join(paragraphs[0].split()) if paragraphs else ""
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z*])", first, maxsplit=1)[0] if first else ""
    sentence = re.sub(r"`([^`]+)`", r"<code>\1</code>", sentence)
    for tex, text in TEX.items():  # a table cell is not typeset: the few symbols an opening uses, as text
        sentence = sentence.replace(tex, text)
    return title, sentence.replace("$", "")


def contents(toc: Path | str = TOC):
    """Every chapter after the root as a DataFrame: part, chapter (title), what it shows."""
    import pandas as pd

    rows = [{"part": part, "chapter": opening(path)[0], "what it shows": opening(path)[1]}
            for part, path in toc_entries(toc)[1:]]
    return pd.DataFrame(rows, columns=["part", "chapter", "what it shows"])
