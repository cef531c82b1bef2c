"""The reference answers of the tiny course in grading_tiny_checks.py: the judges use them, student code never
sees them (the grader does not put this file in the sandbox)."""


def reference_double(x):
    return 2 * x


def reference_square(x):
    return x * x
