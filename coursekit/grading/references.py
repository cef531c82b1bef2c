"""Which coursekit modules hold the answers to each notebook's exercises.

The grader keeps these modules, and every coursekit module that imports one of them, out of that notebook's
sandbox, so a submission cannot call the reference instead of doing the exercise. A module that an *earlier*
notebook taught (notebook 03's attention inside notebook 04) stays available to later notebooks. The student
notebooks never import a module listed for their own exercises (tests/test_notebook_imports.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

ANSWERS: dict[str, tuple[str, ...]] = {
    "01_tokenization": ("coursekit.bpe", "coursekit.gpt2_encoder", "coursekit.course_tokenizer",
                        "coursekit.training"),
    "02_bigram_mlp": ("coursekit.bigram", "coursekit.training"),
    "03_attention": ("coursekit.attention", "coursekit.gpt"),
    # The reference model (MLP, Block, GPT, forward, generate) and the training plumbing that answers `get_batch`
    # and `train` (its Trainer is a training loop); notebook 04 trains with the student's own loop instead.
    "04_gpt_training": ("coursekit.gpt", "coursekit.training"),
    # The sampling filters. coursekit.gpt imports them only inside GPT.generate, so notebook 05 may load the model
    # (its sandbox's GPT simply cannot generate; the notebook drives the model with the student's sampler).
    "05_prompting": ("coursekit.sampling",),
    "06_gpt2_inspection": ("coursekit.gpt2_inspection",),
}


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the coursekit package, by dotted name, with its file."""
    names = {}
    for file in sorted(package.rglob("*.py")):
        parts = file.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = file
    return names


def top_level_imports(file: Path) -> set[str]:
    """What a file imports from coursekit when it is imported (imports inside functions do not count): module
    names, and for `from coursekit.x import y` also `coursekit.x.y` (y may be a module).

    >>> sorted(name for name in top_level_imports(PACKAGE / "gpt2.py") if name in module_names())
    ['coursekit.gpt', 'coursekit.gpt2_encoder']
    """
    return coursekit_imports(ast.parse(file.read_text(encoding="utf-8")).body)


def coursekit_imports(nodes) -> set[str]:
    """The coursekit names that the import statements among `nodes` import: module names, and `module.name` for
    `from module import name`.

    >>> sorted(coursekit_imports(ast.walk(ast.parse("import os\\nfrom coursekit import data"))))
    ['coursekit', 'coursekit.data']
    """
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "coursekit"}


def forbidden_modules(notebook: str, package: Path = PACKAGE) -> set[str]:
    """The answers to `notebook`'s exercises and every coursekit module that imports them, directly or not."""
    modules = module_names(package)
    imports = {name: top_level_imports(file) & set(modules) for name, file in modules.items()}
    forbidden = set(ANSWERS.get(notebook, ()))
    while True:
        more = {name for name, used in imports.items() if used & forbidden} - forbidden
        if not more:
            return forbidden
        forbidden |= more
