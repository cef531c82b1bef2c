"""The checks students call after each exercise, e.g. `check_encode(encode)`.

Each module here holds the checks of one notebook (tokenization, bigram, attention, …) as module-level
`check_*` Check objects; this package collects them all, so `from coursekit.checks import check_encode` works
and the grader finds a check by its name. How a check is built: see coursekit/checks/core.py.
"""

import importlib
import pkgutil

from coursekit.checks.core import Check, Outcome, ProbeError, Test, array_mistake, describe, to_plain

CHECKS: dict[str, Check] = {}
for _module in pkgutil.iter_modules(__path__):
    if _module.name == "core":
        continue
    for _name, _value in vars(importlib.import_module(f"{__name__}.{_module.name}")).items():
        if _name.startswith("check_") and isinstance(_value, Check):
            if _name in CHECKS and CHECKS[_name] is not _value:
                raise ImportError(f"two check modules define {_name}")
            CHECKS[_name] = _value
globals().update(CHECKS)

__all__ = ["Check", "Outcome", "ProbeError", "Test", "array_mistake", "describe", "to_plain", *CHECKS]
