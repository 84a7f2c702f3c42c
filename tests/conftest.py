"""Shared test settings: deterministic seeds, one thread per process (the suite runs with
-n 2 on two cores; commands the tests start inherit ``OMP_NUM_THREADS``, torch's default
that attnlab keeps unless ``--threads`` says otherwise), and repeatable property tests:
Hypothesis draws the same examples every run (``HYPOTHESIS_PROFILE=explore`` draws new
ones, to search further; a failure prints the example to add as a test)."""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
