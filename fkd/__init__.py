"""fkd: faithful knowledge distillation, as an executable book."""
from .attacks import pgd
from .config import Dataset, Method, Profile, TrainConfig, train_config
from .data import eval_subset
from .evaluate import eval_config, evaluate
from .losses import get_method
from .metrics import agreement, emplb
from .models import make_model
from .train import train
from .zoo import list_zoo, load_model

__all__ = ["Dataset", "Method", "Profile", "TrainConfig", "train_config", "eval_subset", "get_method",
           "make_model", "pgd", "train", "list_zoo", "load_model", "agreement", "emplb", "eval_config", "evaluate"]
__version__ = "0.1.0"
