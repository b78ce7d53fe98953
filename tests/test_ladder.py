"""The framework chapter's ladder: every mode nests in the one it builds on, all above EMPLB."""
import math

from fkd.book.ladder import RUNGS, ladder


def test_ladder_nests_and_stays_above_the_attack():
    lad = ladder("mnist", "fd", 0, eps=0.05, method="lp")
    rows = lad.rows.set_index("mode")
    assert list(rows.index) == [m for m, _, _ in RUNGS]
    for mode, base, _ in RUNGS:
        assert rows.loc[mode, "FAITHUB"] >= lad.emplb - 1e-9
        if base is not None:
            assert rows.loc[mode, "FAITHUB"] <= rows.loc[base, "FAITHUB"] + 1e-9
            assert 0.0 <= rows.loc[mode, "removed"] <= 1.0 + 1e-9
    assert math.isnan(rows.loc["paper", "removed"])
    assert (rows.status == "ok").all()
