"""The instructor's autograder: `python -m coursekit grade` (see GRADING.md).

Read in this order: submissions (reading whatever students hand in), rubric (what is graded, for how many
points), grader (matching, running, judging), containment + sandbox + worker + guard (how student code is contained),
wire (the only thing that crosses back), scan (static flags), publish (outputs put in place), feedback and gradescope (outputs), commands (CLI).
Student code runs only in sandbox children; every verdict is computed here, from plain data.
"""
