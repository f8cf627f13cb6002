"""`make tutorial`: the whole guide end to end, then the steps once more on the same data; and what it says, changing
nothing, when it cannot start: a busy port, an mlflow.db from an older MLflow, an older MLflow's mlruns/ folder."""

import contextlib
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import time

import pandas as pd
import psutil
import pytest
from expected_state import assert_notebook_results, assert_smoke_test_runs, expected_predictions, printed_predictions
from guide_commands import RUN_NOTEBOOK, SMOKE_TEST, TUTORIAL
from helpers import STRICT_WARNINGS, assert_readme_shows, fingerprint, make_in, port_of, run_command
from mlflow import MlflowClient

from maintainer.checkout import reader_env
from maintainer.tracking_server import running_tracking_server
from tutorial import server_process
from tutorial.names import BATCH_EXPERIMENT, SMOKE_TEST_EXPERIMENT
from tutorial.steps import BATCH_SCORING, INFERENCE_FROM_FILES, MODEL_REGISTRY, STEPS, TRACKING_SERVER


def make_tutorial(checkout, port, **env_changes):
    """`make tutorial KEEP_SERVER=0` under the warnings rule of every other step: a deprecated call in a step, or in
    the server, fails the tutorial."""
    arguments = [*shlex.split(TUTORIAL)[1:], "KEEP_SERVER=0", f"PORT={port}"]
    return make_in(checkout, *arguments, timeout=900, PYTHONWARNINGS=STRICT_WARNINGS, **env_changes)


def test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version(fresh_checkout, migrated_database, monkeypatch):
    port = server_process.free_port()

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode == 0, f"make tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # Every step of the guide, announced with its README number, in order.
    labels = [line for line in result.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    not_run = {step: f" (not run here: {step.not_run_because})" if step.not_run_because else "" for step in STEPS}
    assert labels == [step.label() + not_run[step] for step in STEPS]
    # Each step that ran is printed whole under its label, steps run side by side included: its own commands, then
    # what they printed, then its time, and nothing of another step's.
    blocks = re.split(r"^(\[\d+/\d+\] .*)$", result.stdout, flags=re.MULTILINE)
    printed_under = {}
    for step in STEPS[2:]:
        if step.not_run_because:
            continue
        block = blocks[blocks.index(step.label()) + 1].strip("\n").split("\n\nAll steps passed")[0].splitlines()
        printed_under[step] = "\n".join(block)
        shown = [line.removeprefix("      $ ") for line in block if line.startswith("      $ ")]
        commands = [command.split(" <")[0] for command in (step.before, step.command) if command]
        assert len(shown) == len(commands) and all(map(str.startswith, shown, commands)), (step.label(), shown)
        assert block[0].startswith("      $ ") and re.fullmatch(r"      done in [\d.]+ s", block[-1]), block
    assert f"The MLflow UI is at http://127.0.0.1:{port}" in result.stdout
    assert not server_process.port_is_taken(port), "KEEP_SERVER=0 left the server running"
    # The README shows what the steps print, on a new server: the first-time line (on stderr) then the step's own.
    assert f"$ {TRACKING_SERVER.command} --backend-store-uri sqlite:///mlflow.db" in result.stdout
    for command, experiment in ((SMOKE_TEST, SMOKE_TEST_EXPERIMENT), (BATCH_SCORING.command, BATCH_EXPERIMENT)):
        [first_time] = [line for line in result.stderr.splitlines() if f"name '{experiment}' does not exist" in line]
        printed = result.stdout.split(f"      $ {command}\n")[1].split("      done in")[0]
        assert_readme_shows(command, f"{first_time}\n{printed}", port)
    # The guide's server keeps its data in the checkout, as `mlflow ui` does.
    assert (fresh_checkout / "mlflow.db").is_file() and (fresh_checkout / "mlartifacts").is_dir()

    # A reader runs the steps again on the same data, another day: a server on the checkout's mlflow.db and
    # mlartifacts/, as `mlflow ui` serves them, and the smoke test and the notebook once more. (A second
    # `make tutorial` would only add a second server start; test_port_in_use_... covers the runner's own errors.)
    with running_tracking_server(fresh_checkout, migrated_database) as server:
        for command in (SMOKE_TEST, RUN_NOTEBOOK):
            rerun = run_command(command, server.url, cwd=fresh_checkout, timeout=600)
            assert rerun.returncode == 0, f"{command} failed the second time:\n{rerun.stdout}\n{rerun.stderr}"
        assert_smoke_test_runs(server.client(), times_run=2)
        assert_notebook_results(server.client(), times_run=2)
        # The summary names every experiment the tutorial wrote to, and no other.
        [summary] = [line for line in result.stdout.splitlines() if line.strip().startswith("Experiments: ")]
        named = summary.split("Experiments: ")[1].split(". Model:")[0].split(", ")
        on_server = {experiment.name for experiment in server.client().search_experiments()} - {"Default"}
        assert sorted(named) == sorted(on_server), summary
        # Steps 6 and 7 predicted with their models; step 9 scored the 150 flowers and recorded it, once.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        for step in (INFERENCE_FROM_FILES, MODEL_REGISTRY):
            [model] = re.findall(r"^Model: (.+)$", printed_under[step], flags=re.MULTILINE)
            model_uri = model if ":/" in model else str(fresh_checkout / model)
            assert printed_predictions(printed_under[step]) == expected_predictions(model_uri), step.label()
        assert len(pd.read_parquet(fresh_checkout / "flowers-predictions.parquet")) == 150
        batch = server.client().get_experiment_by_name(BATCH_EXPERIMENT)
        [scored] = server.client().search_runs([batch.experiment_id])
        assert scored.info.status == "FINISHED" and scored.info.run_name == "score-flowers.csv"


def test_port_in_use_gets_a_clear_error(fresh_checkout, tracking_server):
    port = port_of(tracking_server.url)

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode != 0
    assert f"error: port {port} is already in use" in result.stderr
    assert f"PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr


def previous_schema_revision() -> str:
    """The migration before the newest one: what an mlflow.db made by the previous MLflow release records."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    scripts = ScriptDirectory.from_config(_get_alembic_config("sqlite:///unused.db"))
    return scripts.get_revision(scripts.get_current_head()).down_revision


def test_make_tutorial_on_an_old_database_says_how_to_upgrade_it_and_changes_nothing(checkout_with_runs):
    with sqlite3.connect(checkout_with_runs / "mlflow.db") as database:
        database.execute("UPDATE alembic_version SET version_num = ?", (previous_schema_revision(),))
    before = fingerprint(checkout_with_runs)

    result = make_tutorial(checkout_with_runs, server_process.free_port())

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "mlflow.db was made by an older MLflow" in error
    assert "back it up" in error and "mlflow db upgrade sqlite:///mlflow.db" in error
    assert fingerprint(checkout_with_runs) == before


def tree_fingerprint(folder) -> dict:
    """Every file under `folder`, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_make_tutorial_beside_an_older_mlflows_mlruns_says_how_to_migrate_and_changes_nothing(fresh_checkout):
    # A file store as MLflow 2 wrote it by default: ./mlruns, one experiment with one run.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 writes one only when told to
        old_store = MlflowClient(tracking_uri=f"file://{fresh_checkout / 'mlruns'}")
        run = old_store.create_run(old_store.create_experiment("older-mlflow"))
        old_store.log_param(run.info.run_id, "C", "1.0")
        old_store.set_terminated(run.info.run_id)
    before = tree_fingerprint(fresh_checkout / "mlruns")

    result = make_tutorial(fresh_checkout, server_process.free_port())

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "mlruns/ holds runs" in error
    assert "mlflow migrate-filestore --source . --target sqlite:///mlflow.db" in error
    assert tree_fingerprint(fresh_checkout / "mlruns") == before
    assert not (fresh_checkout / "mlflow.db").exists() and not (fresh_checkout / "mlartifacts").exists()


# Stand-ins for the lessons, for the runner's own behaviour in seconds: the server is real, the steps are not.
# The smoke test imports a module that records its pid and speaks (the tutorial imports it ahead, during the server's
# start); the notebook records its kernel's pid and leaves a model folder for step 6; steps 6 and 7 import a module
# that speaks (ahead, during the notebook); step 7 fails when told to, once step 9 runs beside it; step 9 records its
# pid and runs for as long as it is told.
NOTEBOOK_STAND_IN = [
    "import os, pathlib\npathlib.Path('kernel.pid').write_text(str(os.getpid()))",  # the imports cell
    "folder = pathlib.Path('mlartifacts/1/models/m-0/artifacts')\nfolder.mkdir(parents=True)\n"
    "(folder / 'MLmodel').touch()\nprint('the notebook speaks')",
]
INFERENCE_STAND_IN = """
import os, pathlib, sys, time
import speaks_when_imported
if sys.argv[1].endswith("@champion") and os.environ.get("STEP_7_FAILS"):
    for _ in range(300):
        if pathlib.Path("batch.pid").exists():
            break
        time.sleep(0.1)
    print("step 7 speaks", flush=True)
    print("step 7 fails", file=sys.stderr)
    sys.exit(3)
time.sleep(1)
print("step 6 speaks from", sys.argv[1])
"""
BATCH_SCORING_STAND_IN = """
import os, pathlib, time
pathlib.Path('batch.pid').write_text(str(os.getpid()))
time.sleep(float(os.environ.get("STEP_9_SECONDS", "0")))
"""


@pytest.fixture
def stand_ins(fresh_checkout):
    """A fresh copy whose lessons are the stand-ins above."""
    import nbformat

    cells = [nbformat.v4.new_code_cell(code) for code in NOTEBOOK_STAND_IN]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), fresh_checkout / "ml_project.ipynb")
    (fresh_checkout / "get_started.py").write_text("import smoke_test_imports\nprint('the smoke test speaks')")
    (fresh_checkout / "smoke_test_imports.py").write_text(
        "import os, pathlib\npathlib.Path('smoke.pid').write_text(str(os.getpid()))\nprint('imported')"
    )
    (fresh_checkout / "model_inferencing.py").write_text(INFERENCE_STAND_IN)
    (fresh_checkout / "speaks_when_imported.py").write_text("print('imported')")
    (fresh_checkout / "batch_scoring.py").write_text(BATCH_SCORING_STAND_IN)
    return fresh_checkout


def left_running(checkout, pid_file: str) -> bool:
    """Whether the process group that wrote `pid_file` still runs; stopped here either way, so nothing outlives the
    test. (The tutorial starts each step, and nbclient the kernel, in a group of its own.)"""
    pid = int((checkout / pid_file).read_text())
    deadline = time.monotonic() + 5  # a kernel told to shut down may take a moment
    while server_process.group_is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = server_process.group_is_alive(pid)
    server_process.stop_group(pid, grace_seconds=1)
    return alive


def test_a_step_that_fails_beside_others_stops_the_tutorial_with_its_own_output(stand_ins):
    port = server_process.free_port()

    result = make_tutorial(stand_ins, port, STEP_7_FAILS="yes", STEP_9_SECONDS="300")

    # The step's own exit code, its error last, and the port free again.
    assert result.stderr.splitlines()[-2:] == [
        "error: step 7 failed with exit code 3 (see above)",
        "make: *** [Makefile:66: tutorial] Error 3",
    ], result.stderr
    assert not server_process.port_is_taken(port)
    # Step 9 was running beside it, and is stopped: no step left behind.
    assert not left_running(stand_ins, "batch.pid")
    # The guide's order up to the failing step, each step whole, then that step's own output, and nothing after; what
    # a step printed while it started early (its imports) comes under its command, once the command is known.
    after_3 = result.stdout.split(f"{STEPS[2].label()}\n")[1]
    assert re.match(r"      \$ python get_started.py\nimported\nthe smoke test speaks\n      done in", after_3)
    after_6 = result.stdout.split(f"{STEPS[5].label()}\n")[1]
    assert re.match(r"      \$ python model_inferencing.py mlartifacts/1/models/m-0/artifacts\nimported\n", after_6)
    assert "step 6 speaks from mlartifacts/1/models/m-0/artifacts\n      done in" in after_6
    after_7 = after_6.split(f"{STEPS[6].label()}\n")[1]
    assert after_7 == f"      $ {STEPS[6].command}\nimported\nstep 7 speaks\n", after_7
    assert "step 7 fails\n" in result.stderr and "[8/" not in result.stdout and "All steps passed" not in result.stdout


def stop_what_listens_on(port: int) -> None:
    """A tutorial that fails to stop its server leaves it in a session of its own, which the tutorial's group does not
    reach: stop it by its group, so that nothing outlives the test."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            with contextlib.suppress(ProcessLookupError):  # it has ended meanwhile
                server_process.stop_group(os.getpgid(connection.pid), grace_seconds=5)


def test_a_stop_while_the_server_is_kept_stops_it(stand_ins):
    """SIGTERM, as an editor's stop button or `kill` sends it, to make and the tutorial. Ctrl+C sends them SIGINT,
    which the tutorial handles alike; SIGTERM is the harder case, since make passes its own on to the tutorial too."""
    port = server_process.free_port()
    command = ["make", *shlex.split(TUTORIAL)[1:], f"PORT={port}"]
    with subprocess.Popen(
        command, cwd=stand_ins, env=reader_env(), stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as tutorial:
        try:
            printed = ""
            for line in tutorial.stdout:  # until the tutorial waits, or ends (a failure, shown below)
                printed += line
                if line == "The server keeps running. Press Ctrl+C to stop it.\n":
                    break
            assert server_process.port_is_taken(port), printed
            os.killpg(tutorial.pid, signal.SIGTERM)
            printed += tutorial.communicate(timeout=60)[0]
            server_left_running = server_process.port_is_taken(port)
        finally:
            server_process.stop_group(tutorial.pid, grace_seconds=1)
            stop_what_listens_on(port)

    assert "Stopping the server...\nThe server is stopped." in printed, printed
    assert not server_left_running
    # uvicorn's last line: the server shut down as a stop asks it to, and was not killed on the way.
    assert "Finished server process" in (stand_ins / "mlflow-ui.log").read_text()


def test_a_server_that_fails_to_start_is_reported_and_stops_the_steps_begun(stand_ins, tmp_path):
    # `mlflow ui` exits, as a server that cannot start does, once the notebook's kernel has started beside it (the
    # notebook then waits for the server); every other Python starts as usual.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, pathlib, sys, time\n"
        "if sys.argv[1:2] == ['ui']:\n"
        "    for _ in range(300):\n"
        "        if pathlib.Path('kernel.pid').exists():\n"
        "            break\n"
        "        time.sleep(0.1)\n"
        "    print('this server fails to start, on purpose', file=sys.stderr, flush=True)\n"
        "    pathlib.Path('server-failed-at').write_text(str(time.time()))\n"
        "    os._exit(1)\n"
    )
    port = server_process.free_port()

    result = make_tutorial(stand_ins, port, PYTHONPATH=str(tmp_path))
    stopped_after = time.time() - float((stand_ins / "server-failed-at").read_text())

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: the server exited with code 1:" in result.stderr
    assert "this server fails to start, on purpose" in result.stderr
    assert "(`make doctor` looks for the cause)" in result.stderr
    assert "[3/" not in result.stdout and not server_process.port_is_taken(port)
    # The notebook's kernel and the smoke test's imports, started beside the server, are stopped with it, as Ctrl+C
    # stops them. A notebook deaf to the stop ends only when killed, 15 s on (10 s given to stop, 5 s more); the bound
    # leaves a busy machine room.
    assert (stand_ins / "smoke.pid").exists(), "the smoke test did not start its imports beside the server"
    assert not left_running(stand_ins, "kernel.pid") and not left_running(stand_ins, "smoke.pid")
    assert stopped_after < 10, f"the tutorial ended {stopped_after:.1f} s after its server"
