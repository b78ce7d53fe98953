"""The package's layers and the one rule: a module imports only from its own layer or below.

Every module of ``fkd`` is parsed with ``ast`` (function-local imports included) and each import of
an ``fkd`` module is checked against ``LAYERS``; the certifier (``fkd.bounds``) never imports the
attacks or the metrics; only ``fkd/paths.py`` builds paths into the repository; ``ARCHITECTURE.md``
lists every module, one line each.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fkd"

#: (layer, rank, what belongs there); a module may import only from layers of rank <= its own.
LAYERS = (
    ("library", 0, "fkd.config, fkd.train_config, fkd.units, fkd.data, fkd.models, fkd.attacks, fkd.losses, "
                   "fkd.train, fkd.metrics, fkd.empirical_bound, fkd.zoo, fkd.onnx_import, fkd.small, fkd.provenance, "
                   "fkd.paths, fkd.bounds.*"),
    ("experiments", 1, "fkd.experiments.*: runs that compute rows into a run directory"),
    ("package verbs", 1, "fkd (fkd/__init__.py): the paper's verbs, from the library and the experiments"),
    ("book", 2, "fkd.book.*: what the chapters call: readers, tables, plots, claims, widgets"),
    ("cli", 3, "fkd.cli and fkd.cli_* (argparse), fkd.commands and fkd.commands_* (args -> config -> one call -> "
               "print), fkd.__main__"),
)
RANK = {name: rank for name, rank, _ in LAYERS}
#: the certifier decides bounds on its own: the caller passes any attack point in
BOUNDS_NEVER = ("fkd.attacks", "fkd.metrics", "fkd.empirical_bound")
#: names of repository folders that only fkd/paths.py may join onto a path
REPO_FOLDERS = {"results", "zoo", "reference", "subsets", "checkpoints", ".cache", "data", "_toc.yml",
                "empirical", "certified", "units", "related", "beyond", "figures", "calibration", "audit",
                "_build"}


def layer(module: str) -> str:
    """The layer of a dotted module name (``fkd.experiments.verify`` -> ``experiments``)."""
    if module == "fkd":
        return "package verbs"
    head = module.split(".")[1]
    if head in ("experiments", "book"):
        return head
    if head in ("cli", "commands", "__main__") or head.startswith(("cli_", "commands_")):
        return "cli"
    return "library"


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(module: str, path: Path):
    """(line, imported fkd module, function-local?) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    local = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "fkd":
                    yield node.lineno, a.name, id(node) in local
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "fkd":
                continue
            if node.module is None or (node.level == 0 and target == "fkd"):  # from . import x: x may be a module
                names = [f"{target}.{a.name}" for a in node.names]
                yield from ((node.lineno, n if n in modules() else target, id(node) in local) for n in names)
            else:
                yield node.lineno, target, id(node) in local


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_import_points_down_or_sideways():
    bad = []
    for module, path in modules().items():
        for line, target, _ in imports(module, path):
            if RANK[layer(target)] > RANK[layer(module)]:
                bad.append(f"{where(path, line)}: {module} ({layer(module)}) imports {target} ({layer(target)}); "
                           f"rule: a module imports only from its own layer or below")
    assert not bad, "\n".join(bad)


def test_the_certifier_never_runs_the_attack():
    bad = [f"{where(path, line)}: {module} imports {target}; rule: fkd.bounds never imports the attacks or the "
           f"metrics (the caller passes the attack point)"
           for module, path in modules().items() if module.startswith("fkd.bounds")
           for line, target, _ in imports(module, path) if target.startswith(BOUNDS_NEVER)]
    assert not bad, "\n".join(bad)


def test_bounds_imports_are_top_level_and_acyclic():
    """No submodule of fkd.bounds imports the package back (``from . import x`` inside a function)."""
    bad = [f"{where(path, line)}: {module} imports the package fkd.bounds back; rule: the implementation lives "
           f"in submodules, imported at the top"
           for module, path in modules().items() if module.startswith("fkd.bounds.")
           for line, target, _ in imports(module, path) if target == "fkd.bounds"]
    assert not bad, "\n".join(bad)


def _path_builders(path: Path):
    """(line, what) for each use of ``__file__`` and each repository folder joined onto a path."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__file__":
            yield node.lineno, "__file__"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in REPO_FOLDERS:
                    yield node.lineno, f'/ "{side.value}"'


def test_only_paths_knows_the_layout():
    bad = [f"{where(path, line)}: {what}; rule: only fkd/paths.py knows where the repository, zoo, results, data, "
           f"checkpoints and reference files are (ask fkd.paths)"
           for module, path in modules().items() if module not in ("fkd.paths", "fkd.__main__")
           for line, what in _path_builders(path)]
    assert not bad, "\n".join(bad)


def test_the_layer_check_sees_a_violation(tmp_path):
    """The checks fire: an upward import and a path into the repository, as a module would write them."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from fkd.book.tables import table1\n\nX = ROOT / 'results'\n")
    assert [(t, local) for _, t, local in imports("fkd.metrics", probe)] == [("fkd.book.tables", True)]
    assert [w for _, w in _path_builders(probe)] == ['/ "results"']


def test_architecture_lists_every_module():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"^- `(fkd/[\w/]+\.py)`", text, re.M))
    present = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert not present - listed, f"ARCHITECTURE.md misses {sorted(present - listed)}; rule: one line per module"
    assert not listed - present, f"ARCHITECTURE.md lists modules that do not exist: {sorted(listed - present)}"


@pytest.mark.parametrize("folder", ["fkd", "book", "tests", "benchmarks"])
def test_no_internal_issue_numbers(folder):
    pattern = re.compile(r"\bissues? #?[0-9]+", re.I)
    files = [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".ipynb", ".md")]
    files += list(ROOT.glob("*.md")) if folder == "fkd" else []
    bad = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}; rule: say what a thing is, not its issue number"
           for p in files if p.name != "test_layers.py"
           for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not bad, "\n".join(bad)


def test_the_package_exports_the_papers_verbs_only():
    import fkd

    verbs = {"load_model", "list_zoo", "eval_subset", "pgd", "emplb", "agreement", "faithub", "train", "evaluate",
             "verify"}
    assert set(fkd.__all__) == verbs and all(callable(getattr(fkd, v)) for v in verbs)
