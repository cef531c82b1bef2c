import matplotlib

matplotlib.use("Agg")  # tests never open windows

# Adversarial notebooks for tests/test_grading.py: inputs, not tests (nbval and doctest must not run them).
collect_ignore = ["grading_submissions"]
