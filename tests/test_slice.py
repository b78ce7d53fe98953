"""The Figure 1 slice: points in the ball, the centre is x0, (1, 0) is the EMPLB point, maps agree
with direct evaluation, a student identical to its teacher has no gap anywhere."""
import pytest
import torch
from torch import nn

from fkd.metrics import Attack, confidence_gap, predict
from fkd.experiments.slice import directions, gap_slice, slice_points

ATTACK = Attack(10, 2)


def _pair(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    t = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
    s = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    with torch.no_grad():
        for m in (t, s):
            for p in m.parameters():
                p.mul_(4.0)
    return t, s


def test_slice_points_stay_in_the_ball_and_the_unit_box(pinned):
    x0 = torch.rand((1, 4, 4), generator=pinned)
    x0[0, 0] = 0.0
    x0[0, 1] = 1.0
    d1 = torch.rand((1, 4, 4), generator=pinned) * 2 - 1
    d2 = torch.sign(torch.randn((1, 4, 4), generator=pinned))
    pts = slice_points(x0, 0.3, d1, d2, torch.linspace(-1, 1, 9))
    assert pts.shape == (81, 1, 4, 4)
    assert ((pts - x0).abs() <= 0.3 + 1e-6).all() and (pts >= 0).all() and (pts <= 1).all()
    assert torch.equal(pts[40], x0)  # the centre of an odd grid is x0


def test_gap_slice_matches_direct_evaluation_and_passes_through_the_emplb_point(pinned):
    t, s = _pair(pinned)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    d1, d2, value = directions(t, s, x0, 0.2, pinned, ATTACK)
    sl = gap_slice(t, s, x0, 0.2, d1, d2, n=11, emplb_value=value)
    pts = slice_points(x0, 0.2, d1, d2, sl.coords)
    with torch.no_grad():
        assert torch.allclose(sl.gap.flatten(), confidence_gap(t, s, pts), atol=1e-6)
        assert torch.equal(sl.teacher_top.flatten(), predict(t, pts))
    assert abs(float(sl.gap[5, 5]) - float(confidence_gap(t, s, x0[None])[0])) < 1e-6
    assert abs(float(sl.gap[10, 5]) - value) < 1e-5  # (a, b) = (1, 0) is the EMPLB point
    a, b = sl.worst()
    assert float(sl.gap.max()) == float(sl.gap[int(round((a + 1) * 5)), int(round((b + 1) * 5))])
    assert sl.worst(torch.zeros_like(sl.disagree)) is None


def test_a_student_identical_to_its_teacher_has_no_gap(pinned):
    t, _ = _pair(pinned)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    d1, d2, value = directions(t, t, x0, 0.1, pinned, ATTACK)
    sl = gap_slice(t, t, x0, 0.1, d1, d2, n=7, emplb_value=value)
    assert value == 0.0 and float(sl.gap.max()) == 0.0 and not sl.disagree.any()
    with pytest.raises(ValueError, match="eps must be > 0"):
        directions(t, t, x0, 0.0, pinned, ATTACK)


def test_figure_one_has_a_panel_per_student(pinned):
    from fkd.book.plots import plot_gap_slices
    t, s = _pair(pinned)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    slices = {}
    for name, m in (("SD", s), ("FD", t)):
        d1, d2, v = directions(t, m, x0, 0.2, pinned, ATTACK)
        slices[name] = gap_slice(t, m, x0, 0.2, d1, d2, n=9, emplb_value=v)
    fig = plot_gap_slices(slices, 0.2)
    assert [ax.get_title().split(":")[0] for ax in fig.axes[:2]] == ["SD", "FD"]


def test_figure_one_is_published_with_its_record(tmp_path):
    import json

    from fkd.cli import main
    assert main(["figure1", "--grid", "9", "--threads", "1", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "figure1.json").read_text())
    assert (tmp_path / "figure1.png").stat().st_size > 10_000 and run["config"]["grid"] == 9
    assert set(run["slices"]) == {"SD", "FD"} and all(0 <= s["largest_gap"] <= 1 for s in run["slices"].values())
    assert run["test_index"] >= 0 and run["packages"]["torch"] and run["seed"] == 0
