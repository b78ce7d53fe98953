"""Table 2 in every FAITHUB mode (fkd.book.modes_table) on synthetic rows: the means, the nesting check."""
import pandas as pd
import pytest

from fkd.book.modes_table import modes_findings, modes_rows, modes_table


def _rows(softmax=0.3):
    return pd.DataFrame([{"dataset": "mnist", "student": s, "eps": 0.1, "image": i, "emplb": 0.1,
                          "faithub_paper": 0.6, "faithub_tight": 0.4, "faithub_softmax": softmax,
                          "faithub_joint_softmax": 0.2 + 0.1 * i, "seconds_paper": 1.0, "seconds_tight": 0.5,
                          "seconds_softmax": 1.0, "seconds_joint_softmax": 2.0}
                         for s in ("sd-a0.5", "fd-a0.5") for i in (0, 1)])


def test_the_table_holds_each_modes_mean_beside_the_papers():
    t = modes_table(_rows(), "mnist")
    fd = t.loc[("0.1", "FD")]
    assert fd["n"] == 2 and fd["tight"] == 0.4 and fd["joint_softmax"] == pytest.approx(0.25)
    assert fd["best / EMPLB"] == pytest.approx(2.5) and fd["seconds"] == 4.5
    assert fd["paper's FAITHUB"] == 0.248  # the paper's Table 2, MNIST FD at 0.1
    assert list(t.columns[2:6]) == ["paper", "tight", "softmax", "joint_softmax"]  # the ladder's order
    assert "removes (median over students) 38 % at 0.1" in modes_findings(t)


def test_a_mode_looser_than_its_base_or_below_emplb_is_refused():
    with pytest.raises(ValueError, match="above the tight mode"):
        modes_table(_rows(softmax=0.5), "mnist")
    low = _rows().assign(faithub_joint_softmax=0.05)
    with pytest.raises(ValueError, match="unsound"):
        modes_table(low, "mnist")
    with pytest.raises(ValueError, match="two or more"):
        modes_table(_rows()[["student", "eps", "image", "emplb", "faithub_tight"]], "mnist")


def test_an_unpublished_run_reads_as_none(tmp_path):
    assert modes_rows("mnist", tmp_path) is None
