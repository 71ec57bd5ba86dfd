"""Shared test settings."""

import os

import pytest
import torch

# Tests run two workers on two cores: one thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
