"""coursekit: the plumbing behind the course notebooks (data, tokenizers, models, checks, grading)."""

__version__ = "0.1.0"
