import pytest
import torch

from fkd.models import build, make_model, n_params

COUNTS = {("mnist", "teacher"): 27580, ("mnist", "student"): 17170,
          ("fashion-mnist", "teacher"): 56186, ("fashion-mnist", "student"): 26650,
          ("cifar10", "teacher"): 31450, ("cifar10", "student"): 16354}


@pytest.mark.parametrize("dataset,role", list(COUNTS))
def test_parameter_counts_match_the_paper(dataset, role):
    assert n_params(make_model(dataset, role)) == COUNTS[(dataset, role)]


@pytest.mark.parametrize("dataset,shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_forward_shapes(dataset, shape):
    for role in ("teacher", "student"):
        assert make_model(dataset, role)(torch.rand(5, *shape)).shape == (5, 10)


def test_students_are_smaller_by_the_papers_margin():
    for ds, pct in [("mnist", 37.7), ("fashion-mnist", 52.6), ("cifar10", 48.0)]:
        t, s = COUNTS[(ds, "teacher")], COUNTS[(ds, "student")]
        assert 100 * (1 - s / t) == pytest.approx(pct, abs=0.1)


def test_unknown_layer_and_role():
    with pytest.raises(ValueError, match="linear"):
        build([("dropout", 0.5)])
    with pytest.raises(ValueError, match="teacher"):
        make_model("mnist", "assistant")
