"""The chapters' presentation helper: tables with captions, readable headers, no meaningless index,
missing values as an en dash with a footnote, differences coloured by the tolerance, wide tables
split to fit the text column, run records folded away; figures glued only if legible."""
import matplotlib

matplotlib.use("agg")

import numpy as np
import pandas as pd
import pytest

from fkd.book.present import DASH, MISSING_NOTE, figure, min_font_pt, records, table


def test_a_table_for_readers():
    frame = pd.DataFrame({("robust RT", "ours"): [96.04, np.nan], ("robust RT", "diff"): [-1.9, -3.4]})
    html = table(frame, "Teacher beside the paper", tolerance=2, note="\u2013: not evaluated").to_html()
    assert "Teacher beside the paper" in html and DASH in html and "nan" not in html.lower()
    assert "96.0" in html and "96.04" not in html          # one decimal
    assert "#e6f4e6" in html and "rgb(" in html           # -1.9 within 2 points, -3.4 beyond
    assert "green within \u00b12" in html                  # the colours explained under the table
    assert ">0<" not in html and ">1<" not in html         # no 0..n-1 index column
    assert "not evaluated" in html
    named = pd.DataFrame({"x": [1.0]}, index=pd.Index(["clean"], name="eps"))
    assert ">clean<" in table(named).to_html()


def test_a_paper_table_colours_a_cell_green_exactly_when_it_counts_as_reproduced():
    from fkd.book.tolerance import within
    diffs = [-2.04, 2.06, 0.0504, 0.0506]
    for tol, d in (("table1", diffs[0]), ("table1", diffs[1]), ("table2", diffs[2]), ("table2", diffs[3])):
        html = table(pd.DataFrame({"diff": [d]}), "one cell", precision=4, tolerance=tol).to_html()
        assert ("#e6f4e6" in html) == bool(within(d, tol)), (tol, d)
    assert "rounded as the paper prints it" in html
    # a bare number keeps the plain rule: -2.04 is beyond 2 points
    assert "#e6f4e6" not in table(pd.DataFrame({"diff": [-2.04]}), tolerance=2).to_html()
    with pytest.raises(ValueError, match="table1, table2"):
        table(pd.DataFrame({"diff": [0.1]}), tolerance="table9")


def test_headers_integers_and_the_missing_value_footnote():
    frame = pd.DataFrame({"eps_label": ["0.1"], "paper_mean": [np.nan], "n": [1000.0], "wall_time_s": [3.25]})
    html = table(frame).to_html()
    assert ">eps<" in html and ">paper<" in html and ">images<" in html and ">wall time (s)<" in html
    assert ">1000<" in html and "1000.0" not in html       # an integer-valued column stays an integer
    assert MISSING_NOTE in html                            # a missing value says why


def test_a_wide_table_is_split_into_parts_that_fit_keeping_groups_whole():
    cols = pd.MultiIndex.from_tuples([(f"robust {s}", k) for s in ("RT", "SD", "ARD", "RSLAD", "FD")
                                      for k in ("ours", "paper", "diff")])
    frame = pd.DataFrame(np.full((3, 15), 12.345), columns=cols, index=pd.Index(["0", "0.1", "0.2"], name="eps"))
    t = table(frame, "Table 1", width=400)
    assert len(t.parts) > 1
    for part in t.parts:                                   # a student's ours / paper / diff never split
        groups = [c[0] for c in part.data.columns]
        assert all(groups.count(g) == 3 for g in groups)
    assert "(part 1 of" in t.to_html() and t.to_html().count(">0.1<") == len(t.parts)  # the index repeats
    assert len(table(frame, width=10_000).parts) == 1


def test_run_records_fold_into_a_details_block():
    frame = pd.DataFrame({"commit": ["abc"], "wall time (min)": [2.5]}, index=pd.Index(["results/x"], name="run"))
    html = records(frame).to_html()
    assert html.startswith("<details") and "1 run, 2.5 min" in html and "results/x" in html


def test_a_figure_is_glued_only_if_it_reads_at_the_page_width():
    import matplotlib.pyplot as plt

    small, ax = plt.subplots(figsize=(8, 3))
    ax.set_title("tiny", fontsize=6)
    assert min_font_pt(small) < 9
    with pytest.raises(ValueError, match="reads"):
        figure("tiny", small)
    wide, ax = plt.subplots(figsize=(16, 3))               # shown at half size in the text column
    ax.set_title("large but scaled down", fontsize=12)
    assert min_font_pt(wide) < 9
    ok, ax = plt.subplots(figsize=(8, 3))
    ax.tick_params(labelsize=10)
    ax.set_title("fine", fontsize=10)
    assert min_font_pt(ok) >= 9


def test_legible_fits_a_figure_to_the_column():
    import matplotlib.pyplot as plt

    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(1, 4, figsize=(15, 3))
    for ax in axes:
        ax.set_title("a title much too long for a quarter of the page width", fontsize=6)
    legible(fig)
    assert fig.get_figwidth() == WIDTH and min_font_pt(fig) >= 9
    assert "\n" in axes[0].get_title()
    plt.close(fig)


def test_a_split_table_without_an_index_repeats_the_columns_that_name_its_rows():
    frame = pd.DataFrame({"claim": ["(i) adversarial distillation beats SD"] * 2, "dataset": ["mnist", "cifar10"],
                          **{f"value {k}": [1.5, 2.5] for k in range(12)}})
    t = table(frame, width=500)
    assert len(t.parts) > 1
    assert all(part.data.index.names == ["claim", "dataset"] for part in t.parts)
    assert all(">cifar10<" in part.to_html() for part in t.parts)
    grouped = pd.DataFrame([["clean", 1.0] * 8], columns=pd.MultiIndex.from_tuples(
        [(f"group {k // 2}", f"c{k}") for k in range(16)]))
    assert len(table(grouped, width=300).parts) > 1        # column groups: split, the index left as it is


def test_a_header_never_repeats_another_column():
    frame = pd.DataFrame({"dataset": ["mnist", "mnist"], "eps": [0.1, 0.2], "eps_label": ["0.1", "0.2"],
                          **{f"value {k}": [1.5, 2.5] for k in range(12)}})
    html = table(frame, width=400).to_html()               # eps stays, eps_label keeps its name
    assert ">eps_label<" in html or ">eps label<" in html
