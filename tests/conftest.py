import os

import matplotlib
import torch

matplotlib.use("Agg")  # tests never open windows
# One torch thread in every test process and in the kernels and subprocesses they start: the tests' models are
# tiny, pytest-xdist already runs one worker per core, and on a busy machine a second thread per process only adds
# waiting (one check of 02 took 2 to 60 s with two threads and 0.9 s with one, seen here).
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

# Adversarial notebooks for tests/test_grading.py: inputs, not tests (nbval and doctest must not run them).
collect_ignore = ["grading_submissions"]

