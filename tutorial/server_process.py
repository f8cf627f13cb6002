"""Start a server as its own process group, wait until it is healthy, and stop all of it.

The tutorial runner, `make serve`, the tests and the maintainer's tools all handle servers this way.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from tutorial.doctor import port_is_taken  # noqa: F401  (the tooling's one port check, where its users look for it)


class ServerFailedToStart(RuntimeError):
    """The server exited, or did not answer its health check in time."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], log_file: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `command` in a new session, so it and every worker it forks share one process group."""
    with open(log_file, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_until_healthy(
    process: subprocess.Popen, health_url: str, log_file: Path, timeout_seconds: float = 180
) -> float:
    """Poll `health_url` until it answers 200; return the seconds it took.

    Fails at once if the process exits (a port clash, a bad flag), rather than waiting out the timeout.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        if process.poll() is not None:
            raise ServerFailedToStart(f"the server exited with code {process.returncode}:\n{tail(log_file)}")
        try:
            with urllib.request.urlopen(health_url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        time.sleep(0.2)
    raise ServerFailedToStart(f"no answer from {health_url} after {timeout_seconds:.0f} s:\n{tail(log_file)}")


def stop(process: subprocess.Popen, grace_seconds: float = 15) -> None:
    """SIGTERM the whole process group, give it time to shut down, then SIGKILL whatever is left."""
    # poll() reaps the group leader, or its zombie would keep the group "alive"
    stop_group(process.pid, grace_seconds, reap=process.poll)
    process.wait()


def stop_mlflow_cli(process: subprocess.Popen, grace_seconds: float = 15) -> None:
    """stop() for a server that MLflow's CLI started (`mlflow ui`): the CLI passes the stop on to the server process
    it started, and waits for it; after that it only tears down its own imports, about a second of garbage collection
    (maintainer/docs/speed.md), so it is ended then."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # it has exited already
        started = []
    signal_group(process.pid, signal.SIGTERM)
    psutil.wait_procs(started, timeout=grace_seconds)
    signal_group(process.pid, signal.SIGKILL)
    process.wait()


def stop_group(pgid: int, grace_seconds: float = 15, reap=lambda: None) -> None:
    """stop() for a group this process did not start, such as the tests' shared server, by its group id."""
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while group_is_alive(pgid) and time.monotonic() < deadline:
        reap()
        time.sleep(0.2)
    signal_group(pgid, signal.SIGKILL)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is already gone


def group_is_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def tail(log_file: Path, lines: int = 15) -> str:
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    return "\n".join(text.splitlines()[-lines:])
