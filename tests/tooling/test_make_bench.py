"""`make bench`'s timer: hyperfine runs each whole command, and the bench reads back the seconds of every run."""

import shutil
import subprocess
import sys

from helpers import REPO, missing_service

from maintainer import hyperfine


def test_hyperfine_gives_the_seconds_of_every_run_by_command(tmp_path):
    if shutil.which("hyperfine") is None:
        missing_service(f"hyperfine is not installed: {hyperfine.INSTALL}")
    commands = {"a third of a second": ["sleep", "0.3"], "python -c pass": [sys.executable, "-c", "pass"]}

    samples = hyperfine.samples(commands, 2, tmp_path)

    assert list(samples) == list(commands)
    assert [len(times) for times in samples.values()] == [2, 2]
    assert all(0.3 <= seconds < 3 for seconds in samples["a third of a second"]), samples
    assert max(samples["python -c pass"]) < min(samples["a third of a second"]), samples


def test_without_hyperfine_the_bench_says_what_to_install(tmp_path):
    code = "from pathlib import Path; from maintainer import hyperfine; hyperfine.seconds(['true'], Path('.'))"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={"PATH": str(tmp_path)}, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: make bench times whole commands with hyperfine, which is not installed: {hyperfine.INSTALL}"
    ]
