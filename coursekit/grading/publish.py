"""Putting a grading run's outputs in place: written to a fresh folder next to `--out`, then renamed into it.

Nothing is written into `--out` while grading: a half-written grades.csv never exists, and whatever sits in
`--out` beforehand (a grades.csv that is a folder or a symlink to elsewhere, a stale feedback page) is moved
aside by rename, never written through or followed.

>>> import tempfile; out = Path(tempfile.mkdtemp()) / "out"; (out / "grades.csv").mkdir(parents=True)
>>> with staging(out) as fresh: _ = (fresh / "grades.csv").write_text("student,total\\n")
>>> (out / "grades.csv").is_file()
True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def staging(out: Path):
    """Yield an empty folder next to `out`; when the block ends without error, its entries replace `out`'s."""
    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield fresh
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            os.rename(out, tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent) + "/was")
        if not out.exists():
            os.rename(fresh, out)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        try:
            for entry in sorted(fresh.iterdir()):
                target = out / entry.name
                if target.is_symlink() or target.exists():
                    os.rename(target, old / entry.name)
                os.rename(entry, target)
        finally:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
