import gzip
import json

import pytest
import torch

from fkd import data
from fkd.config import Dataset


@pytest.fixture
def fresh_cache():
    data.load_split.cache_clear()
    yield
    data.load_split.cache_clear()


@pytest.mark.parametrize("dataset,n", [("mnist", 1000), ("fashion-mnist", 1000), ("cifar10", 100)])
def test_saved_subsets_are_the_seeded_draw(dataset, n):
    body = json.loads(data.subset_path(dataset).read_text())
    assert body["indices"] == data.make_eval_subset(dataset)
    assert len(body["indices"]) == n == len(set(body["indices"]))
    assert all(0 <= i < 10000 for i in body["indices"])


@pytest.mark.parametrize("dataset,shape", [("mnist", (1, 28, 28)), ("fashion-mnist", (1, 28, 28)),
                                           ("cifar10", (3, 32, 32))])
def test_eval_subset_images(dataset, shape):
    x, y, idx = data.eval_subset(dataset, n=20)
    assert x.shape == (20, *shape) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and y.shape == (20,)
    images, labels = data.load_split(dataset, train=False)
    assert torch.equal(labels[torch.as_tensor(idx)], y)
    with pytest.raises(ValueError, match="n must lie"):
        data.eval_subset(dataset, n=0)


def test_train_splits_have_the_official_sizes():
    for d, n in [("mnist", 60000), ("cifar10", 50000)]:
        x, y = data.load_split(d, train=True)
        assert x.shape[0] == y.shape[0] == n and x.dtype == torch.uint8
        assert set(y.unique().tolist()) == set(range(10))


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FKD_DATA", str(tmp_path / "d"))
    assert data.data_dir() == (tmp_path / "d").resolve()
    monkeypatch.delenv("FKD_DATA")
    assert data.data_dir() == data.REPO / "data"


def test_fill_copies_from_shared_without_touching_it(monkeypatch, tmp_path, fresh_cache):
    shared = data.shared_data_dir()
    if shared is None:
        pytest.skip("no ../shared/data beside the repository")
    before = sorted(p.name for p in (shared / "MNIST" / "raw").iterdir())
    monkeypatch.setenv("FKD_DATA", str(tmp_path))
    x, y = data.load_split("mnist", train=False)
    assert x.shape == (10000, 1, 28, 28)
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()
    assert sorted(p.name for p in (shared / "MNIST" / "raw").iterdir()) == before


def test_corrupt_file_names_dataset_place_and_fix(monkeypatch, tmp_path, fresh_cache):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"not the real file")
    monkeypatch.setenv("FKD_DATA", str(tmp_path))
    monkeypatch.setenv("FKD_SHARED_DATA", "")
    with pytest.raises(data.DataError) as err:
        data.load_split("fashion-mnist", train=False)
    msg = str(err.value)
    assert "fashion-mnist" in msg and "corrupt" in msg and str(raw) in msg and "Fix" in msg


def test_missing_data_without_network_names_the_fix(monkeypatch, tmp_path, fresh_cache):
    from torchvision import datasets as tvd

    class Offline(tvd.CIFAR10):
        def download(self):
            raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_tv_class", lambda d: Offline)
    monkeypatch.setenv("FKD_DATA", str(tmp_path))
    monkeypatch.setenv("FKD_SHARED_DATA", "")
    with pytest.raises(data.DataError) as err:
        data.load_split(Dataset.CIFAR10, train=False)
    msg = str(err.value)
    assert "cifar10" in msg and str(tmp_path) in msg and "Fix" in msg and "network is unreachable" in msg
