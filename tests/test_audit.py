"""``python -m fkd audit`` on a pair defined here (not from the zoo): ONNX conversion checked against
onnxruntime, the same FAITHUB as ``verify`` on the same networks, EMPLB <= FAITHUB on every row, clear
refusals, resumable runs and an offline report."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx2torch")
pytest.importorskip("onnxruntime")

from fkd import onnx_import  # noqa: E402
from fkd.cli import main  # noqa: E402
from fkd.experiments.audit import AuditConfig, audit, run_task  # noqa: E402
from fkd.networks import load_network  # noqa: E402
from fkd.book.audit_report import summary, write_report  # noqa: E402
from fkd.models import architecture, build  # noqa: E402
from fkd.onnx_import import ConversionMismatch, NetworkFileError, UnsupportedLayer, convert  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the pair is small, and a second thread only competes with other processes."""
    from fkd.experiments.runner import torch_threads

    with torch_threads(1):
        yield


def export(model: nn.Module, path, shape=(1, 28, 28)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, *shape), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def mnist_pair(seed: int = 1):
    """A teacher and a student of the MNIST architectures with weights drawn here (not the zoo's),
    scaled so that the student differs visibly from the teacher."""
    torch.manual_seed(seed)
    t, s = build(architecture("mnist", "teacher")), build(architecture("mnist", "student"))
    with torch.no_grad():
        for m in (*t, *s):
            if isinstance(m, nn.Linear):
                m.weight.mul_(3.0)
    return t.eval(), s.eval()


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """The pair as ONNX files and as a zoo laid out like zoo/ (for verify), in one directory."""
    from fkd.zoo import save_model

    root = tmp_path_factory.mktemp("pair")
    t, s = mnist_pair()
    base = {"profile": "full", "eps_units": "normalised", "dataset": "mnist"}
    save_model(t, architecture("mnist", "teacher"), {"config": {**base, "method": "rt"}, "clean_acc": 0.0},
               root / "zoo" / "mnist" / "rt")
    save_model(s, architecture("mnist", "student"), {"config": {**base, "method": "fd"}, "clean_acc": 0.0},
               root / "zoo" / "mnist" / "fd-a0.5")
    return {"teacher": export(t, root / "teacher.onnx"), "student": export(s, root / "student.onnx"),
            "zoo": root / "zoo", "models": (t, s)}


def test_onnx_conversion_matches_the_torch_network(pair_files):
    conv = convert(pair_files["student"], (1, 28, 28))
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(conv.model(x), pair_files["models"][1](x), atol=1e-5)
    assert conv.check["max_abs_diff"] <= conv.check["tolerance"] and conv.check["compared"] == "logits"


def test_a_normalisation_and_a_softmax_are_folded_and_checked(tmp_path):
    class Norm(nn.Module):
        def forward(self, x):
            return (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)

    class View(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    net = nn.Sequential(Norm(), nn.Conv2d(3, 4, 3, 2), nn.ReLU(), View(), nn.Linear(4 * 7 * 7, 10), nn.Softmax(-1))
    conv = convert(export(net, tmp_path / "n.onnx", (3, 16, 16)))
    assert conv.input_shape == (3, 16, 16) and conv.check["compared"] == "softmax"
    assert any("Sub" in n for n in conv.notes) and any("Softmax" in n for n in conv.notes)
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(conv.model(x).softmax(-1), net(x), atol=1e-6)
    assert all(type(m) in (nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear) for m in conv.model)


@pytest.mark.parametrize("layer,name", [(nn.Tanh(), "Tanh"), (nn.Sigmoid(), "Sigmoid")])
def test_an_unsupported_op_is_refused_by_name(tmp_path, layer, name):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), layer, nn.Linear(10, 10))
    with pytest.raises(UnsupportedLayer, match=name) as err:
        convert(export(net, tmp_path / "u.onnx"))
    assert "Supported: Gemm" in str(err.value)


def test_a_skip_connection_is_refused(tmp_path):
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(784, 10), nn.Linear(10, 10)

        def forward(self, x):
            h = self.a(x.flatten(1))
            return self.b(torch.relu(h)) + h

    with pytest.raises(UnsupportedLayer):
        convert(export(Skip(), tmp_path / "s.onnx"))


def test_a_conversion_that_disagrees_with_onnxruntime_is_refused(pair_files, monkeypatch):
    monkeypatch.setattr(onnx_import, "TOLERANCE", -1.0)  # no difference is small enough: the check must fire
    with pytest.raises(ConversionMismatch, match="onnxruntime"):
        convert(pair_files["teacher"], (1, 28, 28))


def test_bad_files_and_mismatched_pairs_get_clear_errors(tmp_path, pair_files):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(NetworkFileError, match="not a readable ONNX"):
        load_network(str(broken), (1, 28, 28))
    with pytest.raises(NetworkFileError, match="no such file"):
        load_network(str(tmp_path / "missing.onnx"), (1, 28, 28))
    with pytest.raises(NetworkFileError, match="unknown format"):
        load_network(str(tmp_path), (1, 28, 28))
    with pytest.raises(NetworkFileError, match="takes inputs shaped"):
        load_network(str(pair_files["teacher"]), (3, 32, 32))
    other = export(nn.Sequential(nn.Flatten(), nn.Linear(784, 7)), tmp_path / "seven.onnx")
    cfg = AuditConfig(str(pair_files["teacher"]), str(other), dataset="mnist", eps=(0.1,), units="normalised", n_images=2)
    with pytest.raises(NetworkFileError, match="10 classes, the student 7"):
        audit(cfg, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="not both"):
        AuditConfig("a", "b", dataset="mnist", images="x.npy")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((2, 1, 28, 28), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        audit(AuditConfig(str(pair_files["teacher"]), str(pair_files["student"]), images=str(bad), eps=(0.1,)),
              tmp_path / "out2", progress=False)


def test_audit_rows_match_verify_on_the_same_networks(pair_files, tmp_path, monkeypatch):
    from fkd.experiments import verify as verify_mod
    from fkd.experiments.verify_config import VerifyConfig
    from fkd.data import eval_subset
    from fkd.empirical_bound import emplb
    from fkd.metrics import PAPER_ATTACK
    from fkd.experiments.runner import task_generator
    from fkd.units import radius

    monkeypatch.setenv("FKD_ZOO", str(pair_files["zoo"]))  # the model caches are keyed by the weights file
    eps = (0.05, 0.1)
    cfg = AuditConfig(str(pair_files["teacher"]), str(pair_files["student"]), dataset="mnist", eps=eps,
                      units="normalised", n_images=3, agreement=False)
    rows = [run_task(cfg, p, e) for e in eps for p in range(3)]
    vcfg = VerifyConfig("mnist", ("fd",), eps, 3, units="normalised")
    ref = [verify_mod.run_task(vcfg, p, e)[0] for e in eps for p in range(3)]
    for a, v in zip(rows, ref):
        assert a["image"] == v["image"]
        for mode in ("paper", "tight"):
            assert float(a[f"faithub_{mode}"]) == pytest.approx(float(v[f"faithub_{mode}"]), rel=1e-6, abs=1e-9)
        # EMPLB: verify's attack (fkd.empirical_bound.emplb, both objectives) from the audit's own random starts
        # gives the audit's value exactly, and verify's starts land close to it
        p, e = [(p, e) for e in eps for p in range(3)][rows.index(a)]
        x0 = eval_subset("mnist", 3)[0][p]
        t, s = pair_files["models"]
        same = emplb(t, s, x0[None], radius(e, "normalised", "mnist"), PAPER_ATTACK, "both",
                     task_generator(0, "audit", e, p)).value[0]
        assert float(a["emplb"]) == pytest.approx(float(same), rel=1e-6)
        assert float(a["emplb"]) == pytest.approx(float(v["emplb"]), abs=0.03)
        assert float(a["emplb"]) <= float(a["faithub"]) + 1e-6
        assert float(a["faithub"]) == min(float(a["faithub_paper"]), float(a["faithub_tight"]))
    assert max(float(a["emplb"]) for a in rows) > 0.01  # the pair differs: the comparison is not of zeros


def test_onnx_and_safetensors_of_one_pair_give_the_same_rows(pair_files):
    zoo = pair_files["zoo"] / "mnist"
    a = AuditConfig(str(pair_files["teacher"]), str(pair_files["student"]), dataset="mnist", eps=(0.1,),
                    units="normalised", n_images=2, agreement=False)
    b = AuditConfig(str(zoo / "rt.safetensors"), str(zoo / "fd-a0.5.safetensors"), dataset="mnist", eps=(0.1,),
                    units="normalised", n_images=2, agreement=False)
    for p in range(2):
        ra, rb = run_task(a, p, 0.1), run_task(b, p, 0.1)
        for key in ("emplb", "faithub_paper", "faithub_tight"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-7)


def test_the_command_writes_rows_record_and_report_and_resumes(pair_files, tmp_path, capsys):
    t, s = pair_files["models"]
    x = torch.rand(3, 1, 28, 28).numpy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2]))
    out = tmp_path / "audit"
    argv = ["audit", "--teacher", str(pair_files["teacher"]), "--student", str(pair_files["student"]),
            "--images", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--eps", "0.02,0.05",
            "--out", str(out), "--quiet", "--time-limit", "5"]
    assert main(argv) == 0
    import pandas as pd

    rows = pd.read_csv(out / "audit.csv")
    assert len(rows) == 6 and set(rows["units"]) == {"pixel"} and (rows["emplb"] <= rows["faithub"] + 1e-6).all()
    assert set(rows["agreement"]) <= {"certified", "counterexample", "unknown", "disagree_clean"}
    record = json.loads((out / "run.json").read_text())
    assert record["files"]["teacher"]["kind"] == "onnx" and len(record["files"]["student"]["sha256"]) == 64
    assert record["files"]["teacher"]["check"]["max_abs_diff"] <= record["files"]["teacher"]["check"]["tolerance"]
    assert summary(rows)["images"].tolist() == [3, 3]
    assert main(argv) == 0  # a second invocation finds every part file and computes nothing
    assert json.loads((out / "run.json").read_text())["computed_now"] == 0
    other = argv[:argv.index("--eps")] + ["--eps", "0.05", "--time-limit", "9", "--out", str(out), "--quiet"]
    assert main(other) == 2 and "different run" in capsys.readouterr().err


def test_the_report_opens_offline_with_its_figures(pair_files, tmp_path):
    from playwright.sync_api import sync_playwright

    from fkd.book.site import CHROMIUM_ARGS, chromium

    cfg = AuditConfig(str(pair_files["teacher"]), str(pair_files["student"]), dataset="mnist", eps=(0.05, 0.1),
                      units="normalised", n_images=4, agreement=False)
    audit(cfg, tmp_path, progress=False)
    page_path = write_report(tmp_path)
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (requests.append(route.request.url), route.abort()))
        page.goto(page_path.as_uri())
        loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        text = page.inner_text("body")
        browser.close()
    assert requests == [] and loaded == 2
    assert "certified" in text and "Table 2" in text and "NaN" not in text
