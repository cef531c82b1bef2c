"""A fork server: one process imports torch, IPython and the checks once, then forks a fresh sandbox per notebook.

Importing torch takes seconds; forking a process that has already done it takes milliseconds. The server never
runs torch operations or student code itself (forking after thread pools start is unsafe); each forked child
becomes its own session, applies its own limits and runs worker.main(). The parent talks to the server over a
Unix socket: it passes the child's results pipe as a file descriptor with each request, and the server reports
each child's pid and, later, its exit status.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading


def serve(connection_fd: int, check_modules: list[str]) -> None:
    """The server's main loop (runs in the server process, started by ForkServer)."""
    import importlib
    import select

    import IPython.core.interactiveshell  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401

    import coursekit.checks  # noqa: F401
    from coursekit.grading import guard, wire, worker  # noqa: F401

    for name in check_modules:
        importlib.import_module(name)
    connection = socket.socket(fileno=connection_fd)
    children = set()
    while True:
        ready, _, _ = select.select([connection], [], [], 0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            connection.sendall(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
        if not ready:
            continue
        message, fds, _, _ = socket.recv_fds(connection, 65536, 1)
        if not message:
            os._exit(0)  # the parent is gone
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            connection.close()
            os.setsid()
            os.chdir(request["directory"])
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(".worker.log", os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.environ.clear()
            os.environ.update(request["env"])
            import tempfile
            tempfile.tempdir = None
            try:
                worker.main(channel_fd=fds[0])
            finally:
                os._exit(1)
        os.close(fds[0])
        children.add(pid)
        connection.sendall(json.dumps({"token": request["token"], "pid": pid}).encode() + b"\n")


class ForkServer:
    """The parent's handle on a fork server; thread-safe."""

    def __init__(self, boot_path: str, check_modules: list[str], module_paths: list[str], env: dict):
        self.home = env.get("HOME")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = (f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, {boot_path!r}); "
                f"sys.path.extend({module_paths!r}); from coursekit.grading.forkserver import serve; "
                f"serve({theirs.fileno()}, {check_modules!r})")
        self.process = subprocess.Popen([sys.executable, "-I", "-c", code], pass_fds=(theirs.fileno(),), env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.socket = ours
        self.lock = threading.Lock()
        self.changed = threading.Condition()
        self.pids: dict[int, int] = {}
        self.exits: dict[int, int] = {}
        self.token = 0
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self):
        buffer = b""
        while True:
            try:
                chunk = self.socket.recv(65536)
            except OSError:
                chunk = b""
            with self.changed:
                if not chunk:
                    self.exits[-1] = -1  # the server died: every pending wait ends
                    self.changed.notify_all()
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    if "token" in message:
                        self.pids[message["token"]] = message["pid"]
                    else:
                        self.exits[message["exit"]] = message["code"]
                self.changed.notify_all()

    def spawn(self, directory: str, env: dict, channel_fd: int, timeout: float = 60) -> int | None:
        with self.lock:
            self.token += 1
            token = self.token
            socket.send_fds(self.socket, [json.dumps({"token": token, "directory": directory, "env": env}).encode()],
                            [channel_fd])
        with self.changed:
            self.changed.wait_for(lambda: token in self.pids or -1 in self.exits, timeout)
            return self.pids.pop(token, None)

    def wait(self, pid: int, timeout: float) -> int | None:
        with self.changed:
            self.changed.wait_for(lambda: pid in self.exits or -1 in self.exits, timeout)
            return self.exits.pop(pid, None)

    def close(self):
        import shutil

        self.socket.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.home and "coursekit-forkserver-" in self.home:
            shutil.rmtree(self.home, ignore_errors=True)
