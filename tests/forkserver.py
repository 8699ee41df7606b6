"""A fork server for the ``cli`` fixture: each ``leasehold`` call is still its own OS process
(its own pid, environment, working directory, standard streams and exit status), but forked from
a process that has already imported the CLI and both stores, instead of a fresh interpreter that
imports them again.

Why: importing psycopg costs about 0.25 s of CPU on the test machine (asyncio, its error classes,
libpq bindings), more than the whole command it serves, and the suite starts some 2,700 CLI
processes. The same idea as multiprocessing's ``forkserver`` or Mercurial's ``chg``.

What is the same as ``subprocess.run([leasehold, ...])``: the argv (``sys.argv[0]`` is the console
script's path and ``sys.path[0]`` its directory), the whole environment (``os.environ`` replaced,
so libpq and every ``getenv`` see it; ``time.tzset()`` for ``TZ``), the working directory, the
three standard streams (the caller's own pipes, passed over a Unix socket with SCM_RIGHTS), the
entry point (``sys.exit(entry())``, as the console script does, so the interpreter's own shutdown
and exit-status rules apply) and the exit status (a signal gives a negative return code).
What is not: interpreter start-up and imports. A call whose environment changes how Python
itself starts (``PYTHON*``, ``LC_*``, ``LANG``, ``LD_*``) runs as a fresh process instead, and
``LEASEHOLD_TEST_CLI=exec`` makes every call one. Tests that must exercise the installed console
script itself (imports, start-up cost, the exec path) spawn it directly.

Run as ``python tests/forkserver.py SOCKET``: the server (it ends when its standard input, a pipe
from the test process, closes). Imported (``tests.forkserver``): :class:`ForkServer`, the client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

#: Variables read when an interpreter starts: a call that changes one is run as a fresh process.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_")
_STARTUP_NAMES = ("LANG", "LANGUAGE")

#: Modules the server imports once (everything the CLI imports lazily, both stores included).
_PRELOAD = ("leasehold.cli", "leasehold.cli.fast", "leasehold.hooks", "leasehold.hooks.claude",
            "leasehold.store.sqlite", "leasehold.store.postgres", "leasehold.remote",
            "leasehold.ledger", "leasehold.config", "argparse", "json", "sqlite3", "psycopg")


def _startup_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items()
            if k.startswith(_STARTUP_PREFIXES) or k in _STARTUP_NAMES}


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


# --- the server (run as a script) -------------------------------------------------------------

def _serve(path: str) -> dict:
    """Accept calls until standard input closes. Returns only in a forked CLI process, with the
    call's request (argv0, args, env, cwd); its standard streams are in place by then."""
    import importlib
    import selectors
    import signal

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import gc

    gc.freeze()  # the imported modules' objects: never scanned (and so never copied) in a fork
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(128)
    os.replace(path + ".tmp", path)  # the socket appears ready to accept
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is not listener:  # the test process ended (or closed the pipe)
                os._exit(0)
            conn, _ = listener.accept()
            if os.fork() == 0:
                sel.close()
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                return _handle(conn)
            conn.close()


def _handle(conn: socket.socket) -> dict:
    """In a handler process: read one request, fork the CLI process, report its pid and then its
    exit status. Returns only in the CLI process."""
    try:
        head, fds, _, _ = socket.recv_fds(conn, 4, 3)
        head += _read_exact(conn, 4 - len(head))
        request = json.loads(_read_exact(conn, int.from_bytes(head, "big")))
    except (OSError, EOFError, ValueError):
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        return request
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    except OSError:
        pass
    os._exit(0)


def _become_cli(request: dict) -> None:
    """Turn this forked process into ``leasehold ARGS`` as the console script starts it."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = [request["argv0"], *request["args"]]
    sys.path[0] = os.path.dirname(request["argv0"])
    from leasehold.cli import entry

    try:
        code = entry()
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: object) -> None:
    """End as the interpreter ends a script that raised ``SystemExit(code)``: run the exit
    functions, print a non-integer code, flush the standard streams (120 if that fails), but
    skip tearing down the modules, which in a forked process only copies pages."""
    import atexit

    atexit._run_exitfuncs()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            status = 120 if status == 0 else status
    os._exit(status)


# --- the client (imported by the tests) -------------------------------------------------------

class ForkServer:
    """One server per test process, started on first use; :meth:`run` has the shape of
    ``subprocess.run(..., capture_output=True, text=True)``."""

    def __init__(self, directory: str, argv0: str) -> None:
        self.path = os.path.join(directory, "cli.sock")
        self.argv0 = argv0
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        self.disabled = os.environ.get("LEASEHOLD_TEST_CLI", "").strip() == "exec"

    def _start(self, env: dict[str, str]) -> bool:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return True
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._env = dict(env)
            log = open(self.path + ".log", "ab")
            self._proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.path],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=log, env=self._env, cwd="/")
            log.close()
            deadline = time.monotonic() + 60
            while not os.path.exists(self.path):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.disabled = True
                    return False
                time.sleep(0.01)
            return True

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def usable(self, env: dict[str, str]) -> bool:
        if self.disabled:
            return False
        if self._proc is None or self._proc.poll() is not None:
            return self._start(env)
        return _startup_env(env) == _startup_env(self._env)

    def run(self, args: list[str], *, env: dict[str, str], cwd: str, input: str | None,
            timeout: float | None) -> subprocess.CompletedProcess[str]:
        """Run ``leasehold ARGS`` as a forked process; a fresh one when the environment changes
        how Python starts, or the server is not usable. Raises subprocess.TimeoutExpired (the
        process is killed) like ``subprocess.run``."""
        argv = [self.argv0, *args]
        if not self.usable(env):
            return subprocess.run(argv, capture_output=True, text=True, env=env, input=input,
                                  timeout=timeout, cwd=cwd)
        deadline = None if timeout is None else time.monotonic() + timeout
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if input is not None else (os.dup(0), -1)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
        except OSError:  # the server is gone: this call (and the rest) run as fresh processes
            conn.close()
            for fd in (in_r, out_w, err_w, out_r, err_r, in_w):
                if fd != -1:
                    os.close(fd)
            self.disabled = True
            return subprocess.run(argv, capture_output=True, text=True, env=env, input=input,
                                  timeout=timeout, cwd=cwd)
        try:
            body = json.dumps({"argv0": self.argv0, "args": list(args), "env": env,
                               "cwd": os.fspath(cwd)}).encode()
            socket.send_fds(conn, [len(body).to_bytes(4, "big")], [in_r, out_w, err_w])
            conn.sendall(body)
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}

        def drain(fd: int) -> None:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks[fd].append(data)

        readers = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in (out_r, err_r)]
        for reader in readers:
            reader.start()
        if in_w != -1:
            def feed() -> None:
                try:
                    os.write(in_w, input.encode())  # type: ignore[union-attr]
                except OSError:
                    pass  # the command did not read it all (as subprocess.run ignores EPIPE)
                finally:
                    os.close(in_w)

            threading.Thread(target=feed, daemon=True).start()
        reply = conn.makefile("rb")
        pid = None
        returncode = None
        try:
            conn.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
            pid = json.loads(reply.readline())["pid"]
            conn.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
            line = reply.readline()
            returncode = json.loads(line)["returncode"] if line else None
        except (TimeoutError, socket.timeout):
            if pid is not None:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            for reader in readers:
                reader.join(timeout=10)
            out = _text(b"".join(chunks[out_r]))
            raise subprocess.TimeoutExpired(argv, timeout or 0, output=out,
                                            stderr=_text(b"".join(chunks[err_r]))) from None
        finally:
            reply.close()
            conn.close()
        for reader in readers:
            reader.join()
        for fd in (out_r, err_r):
            os.close(fd)
        if returncode is None:
            raise RuntimeError("the CLI fork server lost a call (see " + self.path + ".log)")
        return subprocess.CompletedProcess(argv, returncode, _text(b"".join(chunks[out_r])),
                                           _text(b"".join(chunks[err_r])))


def _text(data: bytes) -> str:
    """Decode as ``subprocess.run(text=True)`` does (locale encoding, universal newlines)."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    _become_cli(_serve(sys.argv[1]))
