"""Shared test settings: deterministic seeds, few threads (the suite runs with -n 2)."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
