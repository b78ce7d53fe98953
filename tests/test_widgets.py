"""The explorer (fkd.book.widgets) on the shipped MNIST zoo: sound numbers, caching, validation, sliders."""
import pytest

from fkd.metrics import Attack
from fkd.book.widgets import Explorer, draw, explore


@pytest.fixture(scope="module")
def ex():
    return Explorer("mnist", students=("sd", "fd"), n_images=3, grid=11, attack=Attack(10, 1))


def test_a_frame_is_sound_cached_and_passes_through_the_emplb_point(ex):
    f = ex.frame(0, "fd", 0.1)
    assert f.emplb <= f.faithub_crown + 1e-6
    assert abs(float(f.slice.gap[-1, 5]) - f.emplb) < 1e-5  # (a, b) = (1, 0)
    gap = float((f.teacher_probs - f.student_probs).abs().max())
    assert abs(gap - f.emplb) < 1e-5
    if f.faithub_published is not None:  # a sound bound from the published run sits above any attack
        assert f.faithub_published[0] >= f.emplb - 1e-6
    assert ex.frame(0, "fd", 0.1) is f and ex.frame(0, "fd-a0.5", 0.1) is f


def test_bad_settings_name_the_problem(ex):
    with pytest.raises(ValueError, match="unknown student 'ard-a0.5'; choose one of: sd-a0.5, fd-a0.5"):
        ex.frame(0, "ard", 0.1)
    with pytest.raises(ValueError, match=r"image must lie in 0..2"):
        ex.frame(3, "fd", 0.1)
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\]"):
        ex.frame(0, "fd", 0.0)


def test_moving_a_slider_renders_a_new_frame(ex):
    box = explore(ex, eps=0.1)
    dataset, student = box.children[0].children
    eps_slider, image_slider = box.children[1].children
    n = len(ex._cache)
    eps_slider.value = eps_slider.min
    image_slider.value = 1
    assert len(ex._cache) == n + 2
    assert f"image 1, eps {eps_slider.value:.3f}" in box.figure._suptitle.get_text()  # redrawn
    fig = draw(ex.frame(1, student.value, eps_slider.value))
    assert len(fig.axes) == 3  # gap map, its colour bar, confidences


def test_a_page_without_a_kernel_gets_one_line_and_no_stray_frame(ex):
    import matplotlib.pyplot as plt

    from fkd.book.widgets import OFFLINE_LINE

    plt.close("all")
    box = explore(ex, eps=0.1)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle             # Jupyter shows the widget
    assert "run this notebook" in OFFLINE_LINE and "run this notebook" in bundle["text/html"]
    assert "<img" not in bundle["text/html"]
    assert box.children[2].value[:8] == b"\x89PNG\r\n\x1a\n"               # the frame is an image widget
    assert plt.get_fignums() == []                                            # nothing for the page to show again


def test_picking_another_dataset_builds_its_explorer_and_redraws(ex):
    box = explore(ex, eps=0.1, datasets=("mnist", "fashion-mnist"))
    dataset, student = box.children[0].children
    eps_slider, image_slider = box.children[1].children
    dataset.value = dataset.options[1][1]
    fm = box.explorers[dataset.value]
    assert fm.dataset.value == "fashion-mnist" and student.options == tuple(fm.models)
    assert eps_slider.max == pytest.approx(20 / 255) and image_slider.max == ex.n_images - 1
    assert box.figure._suptitle.get_text().startswith("fashion-mnist image 0")


def test_the_kernel_free_explorer_embeds_every_frame(ex):
    import base64
    import json
    import re
    from fkd.book.widgets import static_explorer
    html = static_explorer(ex, [0, 1], ["sd", "fd"], [0.05, 0.1], dpi=30)
    frames = json.loads(re.search(r"const frames = (\{.*?\});", html).group(1))
    assert sorted(frames) == [f"{i}|{s}|{e}" for i in (0, 1) for s in ("fd-a0.5", "sd-a0.5")
                              for e in ("0.050000", "0.100000")]
    for uri in frames.values():
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'max="1"' in html and "http" not in html  # nothing fetched from the network
