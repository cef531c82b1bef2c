import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests never open windows

# Adversarial notebooks for tests/test_grading.py: inputs, not tests (nbval and doctest must not run them).
collect_ignore = ["grading_submissions"]


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread; on a busy shared machine two threads can be ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
