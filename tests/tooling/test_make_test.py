"""`make test` itself, run in parallel: the session server that a worker starts for all of them stops when the last
one ends."""

import json
import subprocess
import sys

from helpers import port_of

from maintainer.checkout import reader_env
from tutorial import server_process

# Two quick tests that each need the session's server, one for each of two workers (the second runs in its worker's
# process: no fresh copy, no make).
NEEDS_THE_SERVER = [
    "tests/steps/test_get_started.py::test_smoke_test_logs_its_param_and_metric",
    "tests/steps/test_tracking_server.py::test_a_client_that_loses_the_race_to_create_the_experiment_logs_to_default",
]


def test_the_workers_session_server_stops_when_they_end(fresh_checkout, tmp_path):
    basetemp = tmp_path / "inner-run"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--dist", "load"]
    command += ["--basetemp", str(basetemp), *NEEDS_THE_SERVER]

    result = subprocess.run(
        command, cwd=fresh_checkout, env=reader_env(CI="true", PYTEST_ADDOPTS=None), capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout
    # The worker that needed it first recorded its start; whether the other reused it is not observed here.
    started = json.loads((basetemp / "session-server.json").read_text())
    assert (basetemp / "tracking-server" / "server.log").is_file()
    outlived = server_process.group_is_alive(started["process_group"])
    server_process.stop_group(started["process_group"])  # so that a failure here leaves nothing running
    assert not outlived, "the session server outlived the run"
    assert not server_process.port_is_taken(port_of(started["url"]))
