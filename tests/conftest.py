"""Shared test settings: deterministic seeds, one thread per process (the suite runs with
-n 2 on two cores; commands the tests start inherit ``OMP_NUM_THREADS``, torch's default
that attnlab keeps unless ``--threads`` says otherwise)."""

import os

import pytest
import torch

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
