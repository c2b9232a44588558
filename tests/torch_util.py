"""Shared by the tests that compare with torch-based libraries (they import
torch, or skip, before importing this)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """One torch thread: this torch build's multi-threaded float32 cos was seen
    ~3e-5 off on some elements."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def np32(t):
    return t.detach().cpu().numpy()
