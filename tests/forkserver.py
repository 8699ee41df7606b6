"""A fork server for the ``cli`` fixture: each ``leasehold`` call is still its own OS process
(its own pid, environment, working directory, umask, standard streams and exit status), but forked
from a process that has already imported the libraries the CLI uses (psycopg above all) instead
of a fresh interpreter that imports them again.

Why: ``import psycopg`` alone takes about 0.4 s of CPU on the test machine (asyncio, its error
classes, libpq bindings; a bare interpreter starts in 0.02 s), more than the whole command it
serves, and the suite starts some 2,700 CLI processes. The same idea as multiprocessing's ``forkserver`` or Mercurial's ``chg``.

The same as ``subprocess.run([leasehold, ...], capture_output=True, text=True, ...)``: the argv
(``sys.argv[0]`` is the console script's path, ``sys.path[0]`` its directory), the environment
(``os.environ`` replaced, so libpq and every ``getenv`` see it; ``time.tzset()`` for ``TZ``), the
working directory, the umask, the three standard streams (the caller's own pipes, or its standard
input, passed over a Unix socket with SCM_RIGHTS; none when the caller has none), leasehold's own modules (imported afresh by
each call, so a missing import fails as it would), the entry point (``sys.exit(entry())``, as the
console script does) and the exit status (a signal gives a negative return code; a failed flush
of standard output at exit, 120), and the timeout (the process is killed and
``subprocess.TimeoutExpired`` raised, also when a child of the command keeps the output open; on
any other exception in the caller, pytest-timeout's included, the process is killed too).

Not the same, by design: interpreter start-up, the third-party modules already imported (their
import-time output goes to the server's log), ``__main__`` (this file), ``sys.orig_argv``, the
string-hash seed (one per server, not per call), what the server started with: resource limits,
signal dispositions and mask, whether standard input is seekable; the parent process (a handler
of the server, not the test), and what ``ps`` and ``/proc/PID/cmdline``/``environ`` show (the
server's); and interpreter shutdown (non-daemon threads are joined, exit functions and stream
flushes run, module teardown does not). A call
whose environment changes how an interpreter or psycopg starts (``PYTHON*``, ``PSYCOPG*``,
``LC_*``, ``LANG``, ``LD_*``), or whose console script is not the one beside this interpreter,
runs as a fresh process instead; ``LEASEHOLD_TEST_CLI=exec`` makes every call one. Tests of
start-up, imports and the console script itself spawn it directly.

Run as ``python tests/forkserver.py SOCKET``: the server (it ends when its standard input, a pipe
from the test process, closes). Imported (``tests.forkserver``): :class:`ForkServer`, the client.
"""

from __future__ import annotations

import json
import os
import select
import selectors
import socket
import subprocess
import sys
import threading
import time

#: Variables read when an interpreter or psycopg starts: a call that changes one runs fresh.
_STARTUP_PREFIXES = ("PYTHON", "PSYCOPG", "LC_", "LD_")
_STARTUP_NAMES = ("LANG", "LANGUAGE")

#: Third-party and standard modules the server imports once. leasehold's own modules are not
#: among them: each call imports those itself, as a fresh process does.
_PRELOAD = ("psycopg", "psycopg.pq", "psycopg.errors", "psycopg.rows", "psycopg.sql",
            "psycopg_binary", "argparse", "json", "sqlite3", "tomllib", "urllib.request",
            "http.client", "hashlib", "hmac", "secrets", "uuid", "datetime", "decimal",
            "subprocess", "shlex", "fnmatch", "pathspec", "yaml", "logging")

#: How long a call waits for the server to start it (the server forks at once when it runs).
_START_BOUND = 60.0


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
    call's request (argv0, args, env, cwd, umask); its standard streams are in place by then."""
    import gc
    import importlib
    import signal

    if "leasehold" in sys.modules:  # never: leasehold's modules are each call's own to import
        raise SystemExit("tests/forkserver.py: leasehold was imported into the server")
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # The standard streams were pipes when this interpreter started (so sys.stdout and
    # sys.stderr describe pipes, as in a CLI process whose output is captured); the server's
    # own messages go to a log from here on.
    log = os.open(path + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(log)
    os.close(null)
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
        if not request["stdin"]:  # the caller has no standard input: neither has its command
            os.close(0)
            sys.stdin = sys.__stdin__ = None  # type: ignore[assignment]
        return request
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:  # the caller is gone before it could learn the pid: end its command
        os.kill(pid, 9)
    try:
        _, status = os.waitpid(pid, 0)
        conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    except OSError:
        pass
    os._exit(0)


def _become_cli(request: dict) -> None:
    """Turn this forked process into ``leasehold ARGS`` as the console script starts it."""
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = [request["argv0"], *request["args"]]
    sys.path[0] = os.path.dirname(request["argv0"])
    try:
        from leasehold.cli import entry

        code = entry()
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: object) -> None:
    """End as the interpreter ends a script that raised ``SystemExit(code)``: print a
    non-integer code, run the exit functions, flush the standard streams (120 if that fails),
    but skip tearing down the modules, which in a forked process only copies pages."""
    import atexit

    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads, as at exit
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            status = 120
    os._exit(status)


# --- the client (imported by the tests) -------------------------------------------------------

class ForkServer:
    """One server per test process, started on first use; :meth:`run` has the shape of
    ``subprocess.run(argv, capture_output=True, text=True, ...)``."""

    def __init__(self, directory: str, argv0: str) -> None:
        self.path = os.path.join(directory, "cli.sock")
        self.argv0 = argv0
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        # Only the console script of this interpreter's own installation is forked; any other
        # (another installation on PATH, a missing file) runs as a fresh process.
        beside = os.path.join(os.path.dirname(sys.executable), "leasehold")
        self.disabled = (os.environ.get("LEASEHOLD_TEST_CLI", "").strip() == "exec"
                         or not os.path.isabs(argv0) or os.path.realpath(argv0) != os.path.realpath(beside)
                         or not os.access(argv0, os.X_OK) or len(self.path) > 100)

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._proc.stdin.close()  # type: ignore[union-attr]
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None

    def _usable(self, env: dict[str, str]) -> bool:
        """Whether this call can be forked: the server is running (started here if not) and the
        call's environment starts an interpreter as the server's did."""
        with self._lock:
            if self.disabled:
                return False
            if self._proc is not None and self._proc.poll() is None:
                return _startup_env(env) == _startup_env(self._env)
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._env = dict(env)
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), self.path], env=self._env, cwd="/",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self._proc.stdout.close()  # type: ignore[union-attr]
            self._proc.stderr.close()  # type: ignore[union-attr]
            deadline = time.monotonic() + _START_BOUND
            while not os.path.exists(self.path):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.disabled = True  # every call from here on runs as a fresh process
                    return False
                time.sleep(0.01)
            return True

    def run(self, args: list[str], *, env: dict[str, str], cwd: str, input: str | None,
            timeout: float | None) -> subprocess.CompletedProcess[str]:
        """Run ``leasehold ARGS`` as a forked process (a fresh one when it cannot be forked).

        Raises subprocess.TimeoutExpired, after killing the process, when it has not ended and
        closed its output ``timeout`` seconds after it started (as ``subprocess.run``);
        FileNotFoundError for a missing ``cwd``; RuntimeError when the server fails to start
        the call within 60 s or loses it (its log is named)."""
        argv = [self.argv0, *args]
        if not os.path.isdir(cwd) or not self._usable(env):
            return subprocess.run(argv, capture_output=True, text=True, env=env, input=input,
                                  timeout=timeout, cwd=cwd)
        pending = memoryview(input.encode()) if input is not None else None  # before anything runs
        umask = _umask()
        has_stdin = True
        try:
            in_r = os.dup(0) if input is None else -1
        except OSError:  # no standard input in this process: the command gets none either
            in_r, has_stdin = os.open(os.devnull, os.O_RDONLY), False
        in_w = -1
        if input is not None:
            in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mine = {out_r, err_r} | ({in_w} if in_w != -1 else set())  # closed once each, here
        try:
            try:
                conn.connect(self.path)
                body = json.dumps({"argv0": self.argv0, "args": list(args), "env": env,
                                   "cwd": os.fspath(cwd), "umask": umask,
                                   "stdin": has_stdin}).encode()
                socket.send_fds(conn, [len(body).to_bytes(4, "big")], [in_r, out_w, err_w])
                conn.sendall(body)
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            return self._collect(argv, conn, out_r, err_r, in_w, mine, pending, timeout)
        finally:
            conn.close()
            for fd in mine:
                os.close(fd)

    def _collect(self, argv, conn, out_r, err_r, in_w, mine, pending, timeout):  # type: ignore[no-untyped-def]
        """Feed standard input, read both outputs and the server's two replies (the pid, then
        the exit status) in one loop, as ``Popen.communicate`` does, until all have ended. On
        any exception (a timeout, pytest-timeout's alarm, an interrupt) the process is killed,
        as ``subprocess.run`` kills its child."""
        state = {"pid": None, "returncode": None, "replies": b""}
        try:
            return self._communicate(argv, conn, out_r, err_r, in_w, mine, pending, timeout, state)
        except BaseException:
            if state["pid"] is None:  # started, perhaps, but not yet reported: ask briefly
                try:
                    conn.settimeout(5)
                    while b"\n" not in state["replies"]:
                        data = conn.recv(4096)
                        if not data:
                            break
                        state["replies"] += data
                    if b"\n" in state["replies"]:
                        state["pid"] = json.loads(state["replies"].split(b"\n", 1)[0])["pid"]
                except (OSError, ValueError, KeyError):
                    pass
            if state["pid"] is not None and state["returncode"] is None:
                try:
                    os.kill(state["pid"], 9)
                except ProcessLookupError:
                    pass
            raise

    def _communicate(self, argv, conn, out_r, err_r, in_w, mine, pending, timeout, state):  # type: ignore[no-untyped-def]
        with selectors.DefaultSelector() as sel:
            output: dict[int, list[bytes]] = {out_r: [], err_r: []}
            for fd in (out_r, err_r):
                sel.register(fd, selectors.EVENT_READ)
            sel.register(conn, selectors.EVENT_READ)
            if pending is not None:
                if pending:
                    sel.register(in_w, selectors.EVENT_WRITE)
                else:
                    mine.discard(in_w)
                    os.close(in_w)
            start_by = time.monotonic() + _START_BOUND
            deadline: float | None = None  # the timeout counts from the start of the process
            while sel.get_map():
                now = time.monotonic()
                if state["pid"] is None:
                    wait = start_by - now
                    if wait <= 0:
                        raise RuntimeError(f"the CLI fork server did not start {argv[1:]} in "
                                           f"{_START_BOUND:.0f} s (see {self.path}.log)")
                elif deadline is not None:
                    wait = deadline - now
                    if wait <= 0:  # _collect kills the process
                        out = b"".join(output[out_r]) or None
                        err = b"".join(output[err_r]) or None
                        raise subprocess.TimeoutExpired(argv, timeout, output=out, stderr=err)
                else:
                    wait = None
                for key, _ in sel.select(wait):
                    fd = key.fileobj
                    if fd is conn:
                        data = conn.recv(4096)
                        if not data:
                            sel.unregister(conn)
                            continue
                        state["replies"] += data
                        while b"\n" in state["replies"]:
                            line, state["replies"] = state["replies"].split(b"\n", 1)
                            message = json.loads(line)
                            if "pid" in message:
                                state["pid"] = message["pid"]
                                if timeout is not None:
                                    deadline = time.monotonic() + timeout
                            else:
                                state["returncode"] = message["returncode"]
                    elif fd == in_w:
                        try:
                            written = os.write(in_w, pending[:select.PIPE_BUF])  # type: ignore[index]
                            pending = pending[written:]  # type: ignore[index]
                        except BrokenPipeError:  # the command did not read it all (as subprocess.run)
                            pending = pending[:0]  # type: ignore[index]
                        if not pending:
                            sel.unregister(in_w)
                            mine.discard(in_w)
                            os.close(in_w)
                    else:
                        data = os.read(fd, 65536)
                        if data:
                            output[fd].append(data)
                        else:
                            sel.unregister(fd)
            if state["returncode"] is None:
                raise RuntimeError(f"the CLI fork server lost the call {argv[1:]} (see {self.path}.log)")
            return subprocess.CompletedProcess(argv, state["returncode"], _text(b"".join(output[out_r])),
                                               _text(b"".join(output[err_r])))


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it to read it, which
    other threads could see)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _text(data: bytes) -> str:
    """Decode as ``subprocess.run(text=True)`` does (locale encoding, universal newlines)."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    _become_cli(_serve(sys.argv[1]))
