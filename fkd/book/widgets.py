"""The explorer: teacher-student disagreement around one image, live as eps moves (ipywidgets).

``Explorer.frame(image, student, eps)`` computes what one view shows: the gap map over a 2-D slice
of the eps-ball through the EMPLB point (``fkd.experiments.slice``), both networks' confidences at that point,
EMPLB, a live certified bound (CROWN, tight mode: milliseconds) and, where a published run has it,
the LP FAITHUB of ``results/certified``. ``explore()`` wraps it in sliders and pickers. Frames are
cached, so moving back to a seen setting is instant. The explorer's attack is lighter than the
paper's (PGD-20 x 2 by default, both objectives) to keep an update under a second on a laptop
CPU; the book's tables use the paper's PGD-50 x 5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from fkd.config import PAPER_EPS, Dataset, EpsUnits, model_name, parse, resolve_model
from fkd.losses import PAPER_STUDENTS
from fkd.metrics import Attack
from fkd.experiments.runner import torch_threads
from fkd.experiments.slice import Slice, directions, gap_slice
from fkd.units import as_tensor, default_units, radius, resolve_units

from fkd.paths import CERTIFIED as RESULTS


@dataclass(frozen=True)
class Frame:
    """One view: the slice, the confidences (K,) of teacher and student at the EMPLB point, EMPLB,
    the live CROWN FAITHUB (tight mode) and the published (FAITHUB, bound method), None if that run
    did not cover this image and eps."""
    dataset: Dataset
    image: int
    student: str
    eps: float
    slice: Slice
    teacher_probs: Tensor
    student_probs: Tensor
    emplb: float
    faithub_crown: float
    faithub_published: tuple[float, str] | None


@dataclass
class Explorer:
    """Frames of ``dataset``'s zoo teacher against ``students`` on the first ``n_images`` images of
    the fixed subset. ``grid``: slice resolution per axis; ``seed``: slice directions and PGD starts;
    ``units``: how the slider's eps is read, and which zoo (None: the dataset's reading)."""
    dataset: Dataset | str = Dataset.MNIST
    students: tuple[str, ...] = PAPER_STUDENTS
    n_images: int = 20
    grid: int = 41
    attack: Attack = Attack(20, 2)
    seed: int = 0
    units: EpsUnits | str | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from fkd.bounds import as_net
        from fkd.data import eval_subset
        from fkd.models import INPUT_SHAPE
        from fkd.zoo import load_model

        self.dataset = parse(Dataset, self.dataset)
        self.units = resolve_units(self.units, self.dataset)
        self.students = tuple(model_name(*resolve_model(self.dataset, s)) for s in self.students)
        self.x, self.y, self.index = eval_subset(self.dataset, self.n_images)
        self.teacher = load_model(self.dataset, "rt", units=self.units).eval()
        self.models = {s: load_model(self.dataset, *resolve_model(self.dataset, s), units=self.units).eval()
                       for s in self.students}
        shape = INPUT_SHAPE[self.dataset]
        self.nets = {name: as_net(m, shape) for name, m in [("rt", self.teacher), *self.models.items()]}
        self.published = _published(self.dataset, self.units)

    def frame(self, image: int, student: str, eps: float) -> Frame:
        """The view of image position ``image`` (0 .. n_images - 1), ``student``, radius ``eps``."""
        student = model_name(*resolve_model(self.dataset, student))
        if student not in self.models:
            raise ValueError(f"unknown student {student!r}; choose one of: {', '.join(self.models)}")
        if not 0 <= image < self.n_images:
            raise ValueError(f"image must lie in 0..{self.n_images - 1}, got {image}")
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"eps must lie in (0, 1] ({self.units.value} units), got {eps}")
        key = (image, student, round(eps, 6))
        if key not in self._cache:
            with torch_threads(1):  # tiny networks: one thread, never oversubscribed
                self._cache[key] = self._compute(image, student, eps)
        return self._cache[key]

    def _compute(self, image: int, student: str, eps: float) -> Frame:
        from fkd.bounds import faithub

        x0, model = self.x[image], self.models[student]
        r = radius(eps, self.units, self.dataset)  # the pixel radius of the slider's eps
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + image)
        d1, d2, value = directions(self.teacher, model, x0, r, g, self.attack)
        sl = gap_slice(self.teacher, model, x0, r, d1, d2, self.grid, value)
        worst = (x0 + as_tensor(r, x0) * d1)[None]
        with torch.no_grad():
            pt, ps = self.teacher(worst).softmax(-1)[0], model(worst).softmax(-1)[0]
        fu = faithub(self.nets["rt"], self.nets[student], x0, r, mode="tight", method="crown").value
        pub = self.published.get((student, round(eps, 6), self.index[image]))
        return Frame(self.dataset, image, student, eps, sl, pt, ps, value, fu, pub)


def _published(dataset: Dataset, units: EpsUnits) -> dict:
    """(student, eps, test index) -> (tight-mode FAITHUB, bound method) of the published certified
    run, if any, of the same reading."""
    path = RESULTS / dataset.value / "verify.csv.gz"
    if not path.exists() or units is not default_units(dataset):
        return {}
    import pandas as pd

    df = pd.read_csv(path)
    return {(s, round(float(e), 6), int(i)): (float(v), m)
            for s, e, i, v, m in zip(df.student, df.eps, df.image, df.faithub_tight, df.bound_method)}


def _figure():
    """A figure for frames, outside pyplot: nothing shows it unless asked (no stray frame on a page)."""
    from matplotlib.figure import Figure

    from fkd.book.present import WIDTH

    return Figure(figsize=(WIDTH, 3.8), layout="constrained")


def png(fig, dpi: int = 96, colors: int | None = 128) -> bytes:
    """``fig`` as PNG bytes at ``dpi``; with ``colors``, a palette of that many colours (a third of
    the bytes, no visible change on these frames), so the kernel-free page stays light."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if colors is None:
        return buf.getvalue()
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=colors).save(out, format="PNG", optimize=True)
    return out.getvalue()


def draw(frame: Frame, fig=None):
    """Render a frame: the gap map (left) and both networks' confidences at the EMPLB point (right)."""
    from fkd.book.plots import draw_gap
    from fkd.book.present import legible

    fig = fig or _figure()
    fig.clear()
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    im = draw_gap(ax, frame.slice, marks=False)
    fig.colorbar(im, ax=ax, shrink=0.8)
    k = torch.arange(len(frame.teacher_probs))
    bx.bar(k - 0.2, frame.teacher_probs.numpy(), width=0.4, label="teacher")
    bx.bar(k + 0.2, frame.student_probs.numpy(), width=0.4, label=frame.student.split("-a")[0].upper())
    bx.set_xticks(k.tolist())
    bx.set_ylim(0, 1)
    bx.set_title("confidences at the EMPLB point (star)")
    bx.legend()
    pub = ("not in the published run at this eps" if frame.faithub_published is None
           else "{:.3f} ({})".format(*frame.faithub_published))
    fig.suptitle(f"{frame.dataset.value} image {frame.image}, eps {frame.eps:.3f}: EMPLB {frame.emplb:.3f} <= "
                 f"delta* <= FAITHUB {frame.faithub_crown:.3f} (CROWN, live); published FAITHUB: {pub}")
    return legible(fig)


#: what a page without a kernel shows in place of the live explorer
OFFLINE_LINE = ("The live explorer needs a running kernel: run this notebook in Jupyter to use it "
                "(the precomputed explorer below works without one).")


def _live_box():
    """The explorer's widget class: a VBox whose page form (text/html, for a reader without a kernel)
    is one line saying how to use it, while Jupyter shows the widget itself."""
    import html

    import ipywidgets as w

    class LiveExplorer(w.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            bundle["text/html"] = f"<p class='fkd-offline'><em>{html.escape(OFFLINE_LINE)}</em></p>"
            return bundle

    return LiveExplorer


def explore(explorer: Explorer | None = None, eps: float = 0.1, datasets=tuple(Dataset)):
    """An ipywidgets explorer: dataset and student pickers, eps and image sliders. Explorers of the
    other datasets are built on first pick (default for ``explorer``: MNIST, four students, 20
    images). Returns the widget (display it in Jupyter; a page without a kernel shows
    ``OFFLINE_LINE`` instead); ``.explorers`` holds them by dataset, ``.figure`` the current frame."""
    import ipywidgets as w

    explorers = {} if explorer is None else {explorer.dataset: explorer}
    first = explorer.dataset if explorer is not None else Dataset.MNIST
    data_w = w.Dropdown(options=[(parse(Dataset, d).value, parse(Dataset, d)) for d in datasets], value=first,
                        description="dataset")
    eps_w = w.FloatSlider(description="eps", readout_format=".3f", continuous_update=False)
    img_w = w.IntSlider(value=0, min=0, description="image", continuous_update=False)
    stu_w = w.Dropdown(description="student")
    view = w.Image(format="png", layout=w.Layout(max_width="100%"))
    fig = _figure()

    def current() -> Explorer:
        d = data_w.value
        if d not in explorers:
            explorers[d] = Explorer(d, n_images=explorer.n_images if explorer else 20)
        return explorers[d]

    busy = [False]  # set while the pickers are reset for another dataset

    def update(_=None):
        if busy[0]:
            return
        ex = current()
        view.value = png(draw(ex.frame(img_w.value, stu_w.value, eps_w.value), fig))

    def reset(_=None):
        ex = current()
        top = max(PAPER_EPS[ex.dataset])  # the paper's largest radius
        busy[0] = True
        try:
            eps_w.max, eps_w.min, eps_w.step = top, top / 40, top / 40
            eps_w.value = min(max(eps if ex is explorers.get(first) else top / 2, top / 40), top)
            img_w.max, img_w.value = ex.n_images - 1, min(img_w.value, ex.n_images - 1)
            stu_w.options = list(ex.models)
            stu_w.value = list(ex.models)[0]
        finally:
            busy[0] = False
        update()

    for c in (eps_w, img_w, stu_w):
        c.observe(update, names="value")
    data_w.observe(reset, names="value")
    reset()
    box = _live_box()([w.HBox([data_w, stu_w]), w.HBox([eps_w, img_w]), view])
    box.explorers, box.figure = explorers, fig
    return box


def static_explorer(explorer: Explorer, images, students, eps_values, dpi: int = 96) -> str:
    """The explorer for a reader without a kernel: frames precomputed for each image, student and
    eps, embedded as PNGs in self-contained HTML with a slider over eps and pickers for image and
    student (plain JavaScript, nothing loaded from the network).

    Args:
        images: one image position or a list of them (a picker appears for more than one).
    Returns:
        the HTML (display it with ``IPython.display.HTML`` or write it to a file).
    """
    import base64
    import json
    import uuid

    images = [int(images)] if isinstance(images, int) else [int(i) for i in images]
    students = [model_name(*resolve_model(explorer.dataset, s)) for s in students]
    eps_values = [float(e) for e in eps_values]
    frames = {}
    fig = _figure()
    for i in images:
        for s in students:
            for e in eps_values:
                frames[f"{i}|{s}|{e:.6f}"] = ("data:image/png;base64,"
                                              + base64.b64encode(png(draw(explorer.frame(i, s, e), fig), dpi)).decode())
    uid = "fkd" + uuid.uuid4().hex[:8]
    options = "".join(f'<option value="{s}">{s.split("-a")[0].upper()}</option>' for s in students)
    image_options = "".join(f'<option value="{i}">{i}</option>' for i in images)
    hidden = "" if len(images) > 1 else ' style="display:none"'
    keys = json.dumps([f"{e:.6f}" for e in eps_values])
    return f"""<div id="{uid}" class="fkd-explorer">
<label>eps <input type="range" min="0" max="{len(eps_values) - 1}" step="1" value="0" class="eps"></label>
<span class="eps-label">{eps_values[0]:.3f}</span>
<label>student <select class="student">{options}</select></label>
<label{hidden}>image <select class="image">{image_options}</select></label><br>
<img class="frame" style="max-width:100%" alt="explorer frame">
<script>
(function() {{
  const root = document.getElementById("{uid}");
  const frames = {json.dumps(frames)};
  const eps = {keys};
  const slider = root.querySelector(".eps"), pick = root.querySelector(".student");
  const image = root.querySelector(".image");
  function show() {{
    const e = eps[slider.value];
    root.querySelector(".eps-label").textContent = parseFloat(e).toFixed(3);
    root.querySelector(".frame").src = frames[image.value + "|" + pick.value + "|" + e];
  }}
  slider.addEventListener("input", show);
  pick.addEventListener("change", show);
  image.addEventListener("change", show);
  show();
}})();
</script></div>"""
