"""Run the guide's steps side by side, and print them as one story, in the guide's order.

Each step runs in a thread of its own: its command once the steps it needs have passed (the command it shows
first, `before`, at once), each process in a process group of its own, its output kept as it came. The tutorial
prints the first step not yet printed as it runs, and each later one, whole, when its turn comes.
"""

import contextlib
import queue
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tutorial import server_process
from tutorial.steps import Step, fill_in

INDENT = "      "  # under the step's label


class StepFailed(Exception):
    def __init__(self, step: Step, exit_code: int | None):
        super().__init__(f"step {step.number} failed with exit code {exit_code} (see above)")
        self.exit_code = exit_code
        # The tutorial's own exit status: a signal's code is negative, and a step stopped before it ended has none.
        self.status = exit_code if exit_code and exit_code > 0 else 1


class StepRun(threading.Thread):
    """One step of the guide: its commands as the README shows them, run in `cwd` with `env`."""

    def __init__(
        self,
        step: Step,
        env: dict,
        cwd: Path,
        passed: dict,
        placeholders: Callable[[], dict] = dict,
        early_command: str | None = None,
        early_after: tuple[Step, ...] = (),
    ):
        super().__init__(name=f"step {step.number}", daemon=True)
        # passed: an Event per step, set once it has passed; this step sets its own, and waits for its needs'.
        self.step, self.env, self.cwd, self.passed, self.placeholders = step, env, cwd, passed, placeholders
        # A step that can start before its needs have passed starts as `early_command` once the steps `early_after`
        # have, and is given its own command (placeholders filled in) on stdin once its needs have: the end of stdin
        # tells it to go on.
        self.early_command, self.early_after = early_command, early_after
        self.output = queue.Queue()  # (stream, bytes) as they came, then None at the end
        self.exit_code = None  # 0 once every command passed; None if it was stopped before it ended
        self.seconds = 0.0  # the step's own time: its commands', from when their needs had passed
        self.stopping, self.process, self.lock = threading.Event(), None, threading.Lock()

    def run(self) -> None:
        try:
            for command, needs in ((self.step.before, ()), (self.step.command, self.step.needs)):
                if command is None:
                    continue
                early = self.early_command if command == self.step.command else None
                if not self.wait_for(self.early_after if early else needs):
                    return
                self.exit_code = self.run_command(command, needs, early)
                if self.exit_code != 0:
                    return
            self.passed[self.step].set()
        except SystemExit as err:  # a placeholder that cannot be filled in says why, in one line
            self.keep(sys.stderr, f"{err}\n".encode())
            self.exit_code = 1
        finally:
            self.output.put(None)

    def wait_for(self, needs) -> bool:
        """Wait until the steps in `needs` have passed: False if the step is stopped first."""
        while not all(self.passed[need].wait(0.2) for need in needs):
            if self.stopping.is_set():
                return False
        return True

    def run_command(self, command: str, needs=(), early_command: str | None = None) -> int | None:
        """Run `command` (its needs have passed), or start `early_command` and give it `command` once they have.
        The output is kept under the command's `$` line: an early start's output before that, once it is known."""
        held = []  # an early start's output before its command is known
        if early_command is None:
            command = fill_in(command, **self.placeholders())
            self.keep(sys.stdout, f"{INDENT}$ {command}\n".encode())
        started = time.monotonic()
        with self.lock:
            if self.stopping.is_set():
                return None
            # A group of its own, so that a stop reaches whatever the command starts (the notebook's kernel too).
            self.process = subprocess.Popen(
                shlex.split(early_command or command),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE if early_command else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ, sys.stdout)
            selector.register(self.process.stderr, selectors.EVENT_READ, sys.stderr)
            while selector.get_map():
                for key, _ in selector.select(timeout=0.1):
                    chunk = key.fileobj.read1(65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif early_command:
                        held.append((key.data, chunk))
                    else:
                        self.keep(key.data, chunk)
                if early_command and all(self.passed[need].is_set() for need in needs):
                    command, early_command, started = self.go_on(command), None, time.monotonic()
                    for stream, chunk in held:
                        self.keep(stream, chunk)
        if early_command:  # it ended before its needs had passed
            self.keep(sys.stdout, f"{INDENT}$ {command}\n".encode())
            for stream, chunk in held:
                self.keep(stream, chunk)
        exit_code = self.process.wait()
        self.seconds += time.monotonic() - started
        return None if self.stopping.is_set() else exit_code

    def go_on(self, command: str) -> str:
        """Give an early start its command, as the README shows it, and end its stdin; keep the command's line."""
        try:
            command = fill_in(command, **self.placeholders())
        except SystemExit as err:  # it ends on an empty stdin
            self.keep(sys.stderr, f"{err}\n".encode())
            command = ""
        with contextlib.suppress(BrokenPipeError):  # it has ended already: its exit code says how
            self.process.stdin.write(command.encode())
            self.process.stdin.close()
        if command:
            self.keep(sys.stdout, f"{INDENT}$ {command}\n".encode())
        return command

    def keep(self, stream, chunk: bytes) -> None:
        self.output.put((stream, chunk))

    def stop(self) -> None:
        """Stop the step as Ctrl+C would (SIGINT to its group), then for sure; it starts nothing after this."""
        with self.lock:
            self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            server_process.signal_group(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            server_process.stop_group(self.process.pid, grace_seconds=5, reap=self.process.poll)
        if self.ident is not None:  # started
            self.join()


def print_step(run: StepRun) -> None:
    """Print a step under its label: its output as it comes, until it ends; raise StepFailed if it failed."""
    print(f"\n{run.step.label()}", flush=True)
    while (item := run.output.get()) is not None:
        stream, chunk = item
        stream.buffer.write(chunk)
        stream.flush()
    run.join()
    if run.exit_code != 0:
        raise StepFailed(run.step, run.exit_code)
    print(f"{INDENT}done in {run.seconds:.1f} s", flush=True)
