"""The chapters' table helper: captions, no meaningless index, missing values as an en dash, and
differences coloured by the tolerance."""
import numpy as np
import pandas as pd

from fkd.present import DASH, table


def test_a_table_for_readers():
    frame = pd.DataFrame({("robust RT", "ours"): [96.04, np.nan], ("robust RT", "diff"): [-1.9, -3.4]})
    html = table(frame, "Teacher beside the paper", tolerance=2, note="\u2013: not evaluated").to_html()
    assert "Teacher beside the paper" in html and DASH in html and "nan" not in html.lower()
    assert "96.0" in html and "96.04" not in html          # one decimal
    assert "#e6f4e6" in html and "rgb(" in html           # -1.9 within 2 points, -3.4 beyond
    assert ">0<" not in html and ">1<" not in html         # no 0..n-1 index column
    named = pd.DataFrame({"x": [1.0]}, index=pd.Index(["clean"], name="eps"))
    assert ">clean<" in table(named).to_html()
