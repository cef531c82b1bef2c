"""`python -m coursekit doctor`: is this machine ready for the course? One line per check, each problem with its fix.

    ✓ Python 3.11.7 (coursekit needs >=3.10)
    ✓ numpy 2.4.6 (needs >=1.24)
    ✗ network: cannot reach raw.githubusercontent.com (offline?) — fix: put files in /home/you/.cache/coursekit …

Checks: Python and every package pyproject.toml asks for, PyTorch's build and the device it will use, the data cache
(every file present with the right sha256, the cache writable), the Jupyter kernel (the `python3` kernel starts and
imports coursekit), and whether the data's hosts can be reached. Exit code 0 when nothing needed is broken: being
offline is only a warning once the data is cached.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from coursekit import data

NETWORK_TIMEOUT = 3.0  # seconds for the whole network check, DNS included
KERNEL_TIMEOUT = 60.0
CPU_TORCH = "python -m pip install torch --index-url https://download.pytorch.org/whl/cpu"


@dataclass
class Result:
    """One line of the report. A failed check with `needed=False` is a warning: it does not fail the doctor."""

    ok: bool
    what: str
    fix: str = ""
    needed: bool = True

    def line(self) -> str:
        if self.ok:
            return f"✓ {self.what}"
        note = "" if self.needed else " (warning: not needed right now)"
        return f"✗ {self.what}{note}" + (f"\n    fix: {self.fix}" if self.fix else "")


def project_requirements() -> tuple[SpecifierSet, list[Requirement]]:
    """coursekit's Python requirement and runtime dependencies: from pyproject.toml in a source checkout, else from
    the installed package's metadata."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            tomllib = None
    if pyproject.is_file() and tomllib is not None:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "coursekit":
            return SpecifierSet(project.get("requires-python", "")), [Requirement(r) for r in project["dependencies"]]
    metadata = importlib.metadata.metadata("coursekit")
    requirements = [Requirement(r) for r in importlib.metadata.requires("coursekit") or []]
    return SpecifierSet(metadata.get("Requires-Python") or ""), [r for r in requirements if not r.marker]


def check_python(requires: SpecifierSet) -> list[Result]:
    version = platform.python_version()
    return [Result(requires.contains(version), f"Python {version} (coursekit needs {requires or 'any'})",
                   f"install Python {requires} and create a fresh virtual environment with it")]


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_packages(requirements: list[Requirement]) -> list[Result]:
    results = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = installed_version(requirement.name)
        wanted = str(requirement.specifier) or "any version"
        install = CPU_TORCH if requirement.name == "torch" else f'python -m pip install "{requirement}"'
        if version is None:
            results.append(Result(False, f"{requirement.name} is not installed (needs {wanted})", install))
        elif not requirement.specifier.contains(version, prereleases=True):
            results.append(Result(False, f"{requirement.name} {version} is too old or too new (needs {wanted})",
                                  install.replace("install ", "install --upgrade ", 1)))
        else:
            results.append(Result(True, f"{requirement.name} {version} (needs {wanted})"))
    return results


def check_torch() -> list[Result]:
    try:
        import torch
    except Exception as error:  # an ImportError, or a broken install raising OSError on a missing library
        return [Result(False, f"PyTorch cannot be imported ({error})", CPU_TORCH)]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    if torch.cuda.is_available():
        device = f"GPU {torch.cuda.get_device_name(0)} (device 'cuda')"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "Apple GPU (device 'mps')"
    else:
        device = f"CPU, {torch.get_num_threads()} threads (device 'cpu'; the course is sized for it)"
    return [Result(True, f"PyTorch {torch.__version__}, {build}; will run on {device}")]


def copies(item: data.Asset) -> tuple[Path | None, list[Path]]:
    """(a verified copy or None, the corrupt copies) of an asset, over every cache directory and packaged copy."""
    good, corrupt = None, []
    for directory in data.cache_dirs():
        candidate = directory / item.filename
        if candidate.is_file():
            if data.sha256_of(candidate) == item.sha256:
                good = good or candidate
            else:
                corrupt.append(candidate)
    return good or data._packaged_copy(item), corrupt


def check_data_files(reachable: bool) -> list[Result]:
    """Every registered asset: a verified copy, a corrupt one (always a problem) or none (a problem only offline)."""
    results = []
    first = data.cache_dirs()[0]
    for item in data.ASSETS.values():
        good, corrupt = copies(item)
        for path in corrupt:
            results.append(Result(False, f"data {item.name}: {path} is corrupt (its sha256 does not match)",
                                  f"delete it (rm {path}) and run  python -m coursekit data fetch {item.name}"
                                  f"  (offline: download {item.url} elsewhere and put it at {path})"))
        if good is not None:
            results.append(Result(True, f"data {item.name}: {good} (sha256 ok)"))
        elif not corrupt:
            fix = (f"python -m coursekit data fetch {item.name}" if reachable else
                   f"put files in {first}: download {item.url} on a connected machine and save it as "
                   f"{first / item.filename}")
            results.append(Result(False, f"data {item.name}: not downloaded yet"
                                  + (" (it downloads on first use)" if reachable else ""), fix, needed=not reachable))
    return results


def check_cache_writable() -> list[Result]:
    directory = data.cache_dirs()[0]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as error:
        return [Result(False, f"data cache {directory} is not writable ({error.strerror or error})",
                       f"make it writable (chmod u+w {directory}) or point {data.DATA_DIR_VARIABLE} at a writable "
                       f"directory first, e.g.  export {data.DATA_DIR_VARIABLE}=$HOME/coursekit-data")]
    return [Result(True, f"data cache {directory} is writable")]


def check_kernel() -> list[Result]:
    """The `python3` kernelspec exists, and its kernel starts and imports coursekit."""
    fix = f"{sys.executable} -m pip install ipykernel && {sys.executable} -m ipykernel install --user --name python3"
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        return [Result(False, "Jupyter kernel: jupyter_client is not installed", fix)]
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return [Result(False, "Jupyter kernel: no `python3` kernelspec found", fix)]
    python = spec.argv[0] if spec.argv else "?"
    if python in {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}:
        python = sys.executable  # what jupyter_client runs for these names
    output: list[str] = []
    try:
        manager, client = start_new_kernel(kernel_name="python3", startup_timeout=KERNEL_TIMEOUT,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except Exception as error:
        return [Result(False, f"Jupyter kernel `python3` ({python}) does not start: {error}", fix)]
    try:
        reply = client.execute_interactive(
            "import coursekit", timeout=KERNEL_TIMEOUT,
            output_hook=lambda message: output.append(message["content"].get("evalue", "")))
        imported = reply["content"]["status"] == "ok"
    except Exception as error:
        imported, output = False, [str(error)]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    if not imported:
        return [Result(False, f"Jupyter kernel `python3` ({python}) starts but cannot import coursekit "
                              f"({' '.join(o for o in output if o) or 'no error message'})",
                       f"make the kernel use this Python:  {fix}")]
    return [Result(True, f"Jupyter kernel `python3` starts ({python}) and imports coursekit")]


def reachable_hosts(urls: list[str], timeout: float = NETWORK_TIMEOUT) -> dict[str, bool]:
    """{host: answered} for a HEAD request to each URL, all within `timeout` seconds (DNS lookups included)."""
    answers: dict[str, bool] = {}

    def probe(url: str) -> None:
        host = urllib.parse.urlsplit(url).hostname
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            answers[host] = True
        except urllib.error.HTTPError:  # any HTTP answer, even 403 or 405, means the host is reachable
            answers[host] = True
        except Exception:  # DNS failure, refused, timed out, TLS error…: not reachable, never a crash
            answers[host] = False

    threads = [threading.Thread(target=probe, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)  # never more than ~timeout in all: the threads run at the same time
    return {urllib.parse.urlsplit(url).hostname: answers.get(urllib.parse.urlsplit(url).hostname, False)
            for url in urls}


def check_network(reachable: dict[str, bool], data_cached: bool) -> list[Result]:
    down = sorted(host for host, ok in reachable.items() if not ok)
    if not down:
        return [Result(True, f"network: {', '.join(sorted(reachable))} reachable")]
    return [Result(False, f"network: cannot reach {', '.join(down)} within {NETWORK_TIMEOUT:g} s (offline?)",
                   f"put files in {data.cache_dirs()[0]} (see  python -m coursekit data list  for the files and "
                   f"their URLs), or connect and run  python -m coursekit data fetch",
                   needed=not data_cached)]


def check_containment() -> list[Result]:
    """Which containment `coursekit grade` gives student code here (instructors only: never fails the doctor)."""
    from coursekit.grading import containment

    kind = containment.level()
    refused = containment.refusal()
    refusal = f"; as root, grade refuses to run student code unless {containment.ALLOW_ROOT_FLAG}" if refused else ""
    return [Result(kind == "bubblewrap", f"grading containment: {containment.describe()}{refusal}",
                   "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow user namespaces",
                   needed=False)]


def run_checks(kernel: bool = True) -> list[Result]:
    requires_python, requirements = project_requirements()
    results = check_python(requires_python) + check_packages(requirements) + check_torch()
    reachable = reachable_hosts(sorted({item.url for item in data.ASSETS.values()}))
    results += check_data_files(all(reachable.values())) + check_cache_writable()
    data_cached = all(copies(item)[0] is not None for item in data.ASSETS.values())
    if kernel:
        results += check_kernel()
    return results + check_network(reachable, data_cached) + check_containment()


def main(kernel: bool = True) -> int:
    """Print the report; 0 when everything needed is fine, 1 otherwise."""
    results = run_checks(kernel=kernel)
    for result in results:
        print(result.line())
    problems = [result for result in results if not result.ok and result.needed]
    warnings = [result for result in results if not result.ok and not result.needed]
    if problems:
        print(f"\n✗ {len(problems)} problem(s) to fix before the course works here; then run  "
              f"python -m coursekit doctor  again.")
        return 1
    print(f"\n✓ ready for the course{f' ({len(warnings)} warning(s) above)' if warnings else ''}.")
    return 0
