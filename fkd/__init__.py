"""fkd: faithful knowledge distillation, as an executable book.

The paper's verbs, from the library (``fkd.zoo``, ``fkd.data``, ``fkd.attacks``, ``fkd.metrics``,
``fkd.empirical_bound``, ``fkd.bounds``, ``fkd.train``) and the experiments (``fkd.experiments``)::

    teacher, student = fkd.load_model("mnist", "rt"), fkd.load_model("mnist", "fd")
    x, y, idx = fkd.eval_subset("mnist", n=100)
    fkd.emplb(teacher, student, x, 0.1)           # empirical lower bound on delta* (eq. 8)
    fkd.faithub(teacher, student, x[0], 0.1)      # certified upper bound on delta* (eq. 11)

Importing the package loads these names and nothing else; it writes nothing.
"""
from .attacks import pgd
from .bounds.delta import faithub
from .data import eval_subset
from .experiments.evaluate import evaluate
from .experiments.verify import verify
from .empirical_bound import emplb
from .metrics import agreement
from .train import train
from .zoo import list_zoo, load_model

__all__ = ["load_model", "list_zoo", "eval_subset", "pgd", "emplb", "agreement", "faithub", "train", "evaluate",
           "verify"]
__version__ = "0.1.0"
