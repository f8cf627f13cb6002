"""Whole commands, timed by hyperfine (https://github.com/sharkdp/hyperfine): `make bench` asks it for the samples
and takes their median, so that every row of its table is measured the same way."""

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

INSTALL = "install it: `sudo apt install hyperfine` (Debian, Ubuntu) or `brew install hyperfine` (macOS)"


def samples(commands: dict[str, list[str]], runs: int, cwd: Path, env: dict | None = None) -> dict[str, list[float]]:
    """Run each command `runs` times, one command after the other, and return the seconds of every run, by name.

    No shell (`--shell=none`): what is timed is the command itself. A command that fails stops the bench.
    """
    if shutil.which("hyperfine") is None:
        sys.exit(f"error: make bench times whole commands with hyperfine, which is not installed: {INSTALL}")
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "times.json"
        arguments = ["hyperfine", "--shell=none", "--runs", str(runs), "--style", "basic", "--export-json", export]
        for name, command in commands.items():
            arguments += ["--command-name", name, shlex.join(command)]
        subprocess.run(arguments, cwd=cwd, env=env, check=True, stdout=sys.stderr)
        results = json.loads(export.read_text())["results"]
    return {result["command"]: result["times"] for result in results}


def seconds(command: list[str], cwd: Path, env: dict | None = None) -> float:
    """One run of a whole command."""
    [[one_run]] = samples({shlex.join(command): command}, 1, cwd, env).values()
    return one_run
