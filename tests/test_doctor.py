"""`python -m coursekit doctor`: each broken piece gives a ✗ line with its fix and the right exit code, never a hang.

Every test runs against a tiny fake asset registry in a temporary cache, with the network and the kernel stubbed
unless the test is about them, so it does not depend on this machine's data or connection.
"""

import hashlib
import importlib.metadata
import threading
import time
import urllib.error

import pytest

from coursekit import cli, data, doctor

CONTENT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A one-asset registry whose file is in a temporary cache; the network is up and the kernel fine."""
    asset = data.Asset(name="tiny", filename="tiny.txt", url="https://data.example.org/tiny.txt",
                       sha256=hashlib.sha256(CONTENT).hexdigest(), size=len(CONTENT))
    monkeypatch.setattr(data, "ASSETS", {"tiny": asset})
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / "tiny.txt").write_bytes(CONTENT)
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(directory))
    monkeypatch.setattr(doctor, "reachable_hosts", lambda urls, timeout=None: {"data.example.org": True})
    monkeypatch.setattr(doctor, "check_kernel", lambda: [doctor.Result(True, "Jupyter kernel (stubbed)")])
    return directory


def report(capsys):
    code = doctor.main()
    return code, capsys.readouterr().out


def line_about(output: str, words: str) -> str:
    """The report line containing `words`, with its fix line when it has one."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if words in line:
            following = lines[index + 1] if index + 1 < len(lines) and lines[index + 1].startswith("    fix:") else ""
            return line + "\n" + following
    raise AssertionError(f"no line about {words!r} in:\n{output}")


def test_a_healthy_machine_gets_only_ticks_and_exit_code_0(cache, capsys):
    code, output = report(capsys)
    assert code == 0, output
    assert "✗" not in output
    assert line_about(output, "data tiny").startswith("✓")
    assert line_about(output, "Python ").startswith("✓")
    assert line_about(output, "numpy ").startswith("✓")
    assert "ready for the course" in output


def pretend_missing(monkeypatch, package: str) -> None:
    """importlib.metadata says `package` is not installed; every other package is as it is."""
    real_version = importlib.metadata.version

    def version(name):
        if name == package:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_a_missing_package_is_a_failure_naming_the_pip_command(cache, capsys, monkeypatch):
    pretend_missing(monkeypatch, "seaborn")
    code, output = report(capsys)
    assert code == 1
    line = line_about(output, "seaborn")
    assert line.startswith("✗ seaborn is not installed")
    assert 'fix: python -m pip install "seaborn>=' in line


def test_a_too_old_package_asks_for_an_upgrade(cache, capsys, monkeypatch):
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.0" if name == "numpy" else real_version(name))
    code, output = report(capsys)
    assert code == 1
    line = line_about(output, "numpy")
    assert line.startswith("✗ numpy 1.0 is too old")
    assert 'python -m pip install --upgrade "numpy>=' in line


def test_a_missing_torch_points_at_the_small_cpu_build(cache, capsys, monkeypatch):
    pretend_missing(monkeypatch, "torch")
    code, output = report(capsys)
    assert code == 1
    assert "download.pytorch.org/whl/cpu" in line_about(output, "torch is not installed")


def test_torch_build_and_device_are_reported(cache, capsys):
    _, output = report(capsys)
    line = line_about(output, "PyTorch ")
    assert line.startswith("✓") and "build" in line and "device '" in line


def test_a_corrupt_cache_file_is_a_failure_with_delete_and_fetch(cache, capsys):
    (cache / "tiny.txt").write_bytes(CONTENT[:10])  # truncated download
    code, output = report(capsys)
    assert code == 1
    line = line_about(output, "corrupt")
    assert line.startswith(f"✗ data tiny: {cache / 'tiny.txt'} is corrupt")
    assert f"rm {cache / 'tiny.txt'}" in line and "python -m coursekit data fetch tiny" in line


def test_a_missing_file_is_only_a_warning_while_the_network_is_up(cache, capsys):
    (cache / "tiny.txt").unlink()
    code, output = report(capsys)
    assert code == 0, output
    line = line_about(output, "data tiny")
    assert line.startswith("✗ data tiny: not downloaded yet") and "warning" in line
    assert "python -m coursekit data fetch tiny" in line


def test_an_unwritable_cache_is_a_failure(cache, capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # The first directory cannot be created (a file is in the way), even for root; the data is in the second.
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, f"{blocker / 'cache'}:{cache}")
    code, output = report(capsys)
    assert code == 1
    line = line_about(output, "is not writable")
    assert line.startswith(f"✗ data cache {blocker / 'cache'} is not writable")
    assert "chmod u+w" in line and data.DATA_DIR_VARIABLE in line


def test_an_unwritable_cache_reported_by_the_os(cache, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor.tempfile, "NamedTemporaryFile", refuse)
    code, output = report(capsys)
    assert code == 1
    assert "Permission denied" in line_about(output, "is not writable")


def test_offline_with_the_data_cached_is_a_warning_with_the_put_files_fix(cache, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "reachable_hosts", lambda urls, timeout=None: {"data.example.org": False})
    code, output = report(capsys)
    assert code == 0, output
    line = line_about(output, "network")
    assert line.startswith("✗ network: cannot reach data.example.org") and "warning" in line
    assert f"put files in {cache}" in line


def test_offline_without_the_data_is_a_failure_saying_where_to_put_files(cache, capsys, monkeypatch):
    (cache / "tiny.txt").unlink()
    monkeypatch.setattr(doctor, "reachable_hosts", lambda urls, timeout=None: {"data.example.org": False})
    code, output = report(capsys)
    assert code == 1
    assert f"put files in {cache}" in line_about(output, "network")
    line = line_about(output, "data tiny")
    assert line.startswith("✗ data tiny: not downloaded yet") and "warning" not in line
    assert f"put files in {cache}" in line and "https://data.example.org/tiny.txt" in line


def test_the_network_probe_reports_an_unreachable_host_without_raising(monkeypatch):
    def fail(request, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(doctor.urllib.request, "urlopen", fail)
    assert doctor.reachable_hosts(["https://data.example.org/tiny.txt"]) == {"data.example.org": False}


def test_any_http_answer_counts_as_reachable(monkeypatch):
    def forbidden(request, timeout):
        assert request.get_method() == "HEAD"
        raise urllib.error.HTTPError(request.full_url, 403, "Forbidden", {}, None)

    monkeypatch.setattr(doctor.urllib.request, "urlopen", forbidden)
    assert doctor.reachable_hosts(["https://data.example.org/tiny.txt"]) == {"data.example.org": True}


def test_a_hanging_network_is_given_up_on_quickly(monkeypatch):
    released = threading.Event()

    def hang(request, timeout):  # like a DNS lookup that never answers (urllib's timeout does not cover DNS)
        released.wait(30)
        raise OSError("gave up")

    monkeypatch.setattr(doctor.urllib.request, "urlopen", hang)
    start = time.monotonic()
    try:
        answers = doctor.reachable_hosts(["https://a.example.org/x", "https://b.example.org/y"], timeout=0.5)
    finally:
        released.set()
    assert time.monotonic() - start < 3
    assert answers == {"a.example.org": False, "b.example.org": False}


def test_a_missing_kernelspec_names_the_ipykernel_install_command(monkeypatch):
    from jupyter_client import kernelspec

    def no_kernel(self, name):
        raise kernelspec.NoSuchKernel(name)

    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", no_kernel)
    [result] = doctor.check_kernel()
    assert not result.ok and result.needed
    assert "no `python3` kernelspec" in result.what
    assert "-m ipykernel install --user" in result.fix


def test_the_real_python3_kernel_starts_and_imports_coursekit():
    [result] = doctor.check_kernel()
    assert result.ok, result.line()


def test_the_command_line_runs_the_doctor(cache, capsys):
    assert cli.main(["doctor"]) == 0
    assert "ready for the course" in capsys.readouterr().out
