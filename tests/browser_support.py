"""Plumbing for tests/test_browser.py: Debian's Chromium under Playwright, a JupyterLab server, and an offline CDN.

The browser is the system's `/usr/bin/chromium` (`.ci/run` installs Debian's package); Playwright never downloads
one. bertviz's views load require.js, d3 and jQuery from cdnjs; this machine has no internet, so the same library
versions are fetched once from the npm registry (`npm pack`) into a cache directory outside the repository, and the
browser's requests to cdnjs are answered from there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import platformdirs

CHROMIUM = os.environ.get("COURSEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

CDN = "https://cdnjs.cloudflare.com/ajax/libs/"
# Each CDN URL bertviz loads -> (npm package@version, file inside the package).
# jQuery 2.0.0 itself is not on the npm registry (`jquery` jumps from 1.9.1 to 2.1.0); `jquery2@2.0.3` ships the
# unmodified jQuery 2.0.3 build, the last patch release of that same 2.0 line.
CDN_FILES = {
    CDN + "require.js/2.3.6/require.min.js": ("requirejs@2.3.6", "require.js"),
    CDN + "d3/5.7.0/d3.min.js": ("d3@5.7.0", "dist/d3.min.js"),
    CDN + "jquery/2.0.0/jquery.min.js": ("jquery2@2.0.3", "jquery-2.0.3.js"),
}


def chromium_missing_reason() -> str | None:
    """Why no browser test can run here, or None when Chromium and Playwright are both available."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM}: install Debian's package with  apt-get install chromium  "
                f"(.ci/run does), or set COURSEKIT_CHROMIUM to another Chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'the Python package playwright is missing: python -m pip install -e ".[dev]"'
    return None


def launch_chromium(playwright, user_data_dir: Path):
    """A persistent browser context of the system's Chromium, with a fresh profile in user_data_dir."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
        viewport={"width": 1280, "height": 900})


def cdn_cache_dir() -> Path:
    return Path(os.environ.get("COURSEKIT_TEST_CACHE", platformdirs.user_cache_dir("coursekit-tests"))) / "cdn"


def cdn_files(cache: Path | None = None) -> dict[str, Path]:
    """{CDN URL: local file}, fetching each npm package once with `npm pack` (atomic: concurrent runs are safe)."""
    cache = cache or cdn_cache_dir()
    files = {}
    for url, (package, inside) in CDN_FILES.items():
        target = cache / package / inside
        if not target.is_file():
            _npm_extract(package, inside, target)
        files[url] = target
    return files


def _npm_extract(package: str, inside: str, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: it fetches the JavaScript libraries bertviz loads from a CDN")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent.parent) as scratch:
        done = subprocess.run([npm, "pack", package, "--pack-destination", scratch, "--silent"], cwd=scratch,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {package} failed: {done.stderr.strip()[-500:]}")
        [archive] = Path(scratch).glob("*.tgz")
        with tarfile.open(archive) as tar:
            member = tar.extractfile(f"package/{inside}")
            if member is None:
                raise RuntimeError(f"{package} has no file {inside}")
            partial = Path(scratch) / "file"
            partial.write_bytes(member.read())
        os.replace(partial, target)


def bertviz_cdn_urls() -> set[str] | None:
    """Every cdnjs URL in the installed bertviz's source (require paths get their .js), or None without bertviz."""
    spec = importlib.util.find_spec("bertviz")  # found, not imported: importing it imports torch
    if spec is None or spec.origin is None:
        return None
    found = set()
    for source in Path(spec.origin).parent.glob("*.[pj][ys]"):
        for url in re.findall(re.escape(CDN) + r"[^'\"\s)]+", source.read_text(encoding="utf-8", errors="replace")):
            found.add(url if url.endswith(".js") else url + ".js")
    return found


def route_offline(context, files: dict[str, Path], log: list[str]) -> None:
    """Answer cdnjs requests from `files`; refuse every other request that leaves this machine (and log it)."""

    def from_cache(route):
        url = route.request.url.split("?")[0]
        log.append(url)
        if url in files:
            route.fulfill(status=200, body=files[url].read_bytes(), content_type="application/javascript",
                          headers={"Access-Control-Allow-Origin": "*"})
        else:
            route.abort("internetdisconnected")

    def refuse(route):
        log.append(route.request.url)
        route.abort("internetdisconnected")

    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), refuse)
    context.route(re.compile("^" + re.escape(CDN)), from_cache)  # registered last, so it is tried first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LAB_SETTINGS = {
    # no news or update pop-ups over the notebook, every cell in the page (no virtual scrolling)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@contextmanager
def jupyterlab(root: Path, home: Path, timeout: float = 90, python: str = sys.executable, opens: str | None = None):
    """Run `python -m jupyter lab [opens]` on 127.0.0.1 (free port, random token) serving root, with this Python or
    another environment's; yields (base URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    settings = home / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    environment = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "run"),
                   "IPYTHONDIR": str(home / "ipython"),
                   "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])}  # its env first
    command = [python, "-m", "jupyter", "lab", *([opens] if opens else []), "--no-browser", "--expose-app-in-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
               "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    log = open(home / "jupyterlab.log", "w")
    server = subprocess.Popen(command, cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:  # poll the server's API until it answers (not a browser wait)
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({server.returncode}):\n{_tail(home / 'jupyterlab.log')}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{_tail(home / 'jupyterlab.log')}")
            time.sleep(0.25)
        yield base, token
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started (its own session)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def cells_needed(sources: list[str], index: int) -> list[int]:
    """The code cells that cell `index` needs, found by names: each earlier cell that defines a name a needed cell
    reads, back to the top. Lets a test run one cell of a long notebook without running all of it.

    >>> cells_needed(["import torch", "x = torch.ones(2)", "slow = train()", "y = x * 2", "print(y)"], 4)
    [0, 1, 3, 4]
    """
    needed, chosen = set(_names(sources[index])[1]), [index]
    for earlier in range(index - 1, -1, -1):
        defined, used = _names(sources[earlier])
        if defined & needed:
            chosen.append(earlier)
            needed |= used
    return sorted(chosen)


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds at the top level, names it reads anywhere) — IPython magics and shell lines ignored."""
    import ast
    import builtins

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set(), set()
    defined, used = set(), set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

    def visit(node, top: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and top:
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and top:
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) and top else used).add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, scopes))

    visit(tree, True)
    return defined, used - set(dir(builtins))
