"""One fixture seeds everything and pins CPU and float32 for every test."""
from __future__ import annotations

import random

import pytest
import torch


@pytest.fixture(autouse=True)
def pinned():
    """Seed Python and torch, pin float32 on the CPU, and restore torch's global RNG afterwards."""
    state = torch.random.get_rng_state()
    dtype = torch.get_default_dtype()
    random.seed(0)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    torch.set_default_device("cpu")
    yield torch.Generator().manual_seed(0)
    torch.set_default_dtype(dtype)
    torch.random.set_rng_state(state)
