"""Judge-side replays of the exercises: the right computation (from the reference) and its usual mistakes.

The checks' judges import these modules inside their functions, in the grader's own process. Each module imports
the reference it replays at its top level, so coursekit/grading/references.py keeps it out of the sandbox of every
notebook whose exercises it answers (a student's code cannot reach it); coursekit/checks, which the sandbox does
load, holds only probes, messages and the reading of plain data.
"""
