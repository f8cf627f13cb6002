"""`make tutorial`: the whole guide end to end, then the steps once more on the same data; and what it says, changing
nothing, when it cannot start: a busy port, an mlflow.db from an older MLflow, an older MLflow's mlruns/ folder."""

import re
import shlex
import sqlite3

import pytest
from expected_state import assert_notebook_results, assert_smoke_test_runs
from guide_commands import RUN_NOTEBOOK, SMOKE_TEST, TUTORIAL
from helpers import STRICT_WARNINGS, assert_readme_shows, fingerprint, make_in, port_of, run_command
from mlflow import MlflowClient

from maintainer.tracking_server import running_tracking_server
from tutorial import server_process
from tutorial.names import BATCH_EXPERIMENT, SMOKE_TEST_EXPERIMENT
from tutorial.steps import BATCH_SCORING, STEPS, TRACKING_SERVER


def make_tutorial(checkout, port):
    """`make tutorial KEEP_SERVER=0` under the warnings rule of every other step: a deprecated call in a step, or in
    the server, fails the tutorial."""
    arguments = [*shlex.split(TUTORIAL)[1:], "KEEP_SERVER=0", f"PORT={port}"]
    return make_in(checkout, *arguments, timeout=900, PYTHONWARNINGS=STRICT_WARNINGS)


def test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version(fresh_checkout, migrated_database):
    port = server_process.free_port()

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode == 0, f"make tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # Every step of the guide, announced with its README number, in order.
    labels = [line for line in result.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert [label.split(" (not run here")[0] for label in labels] == [step.label() for step in STEPS]
    # Each step that ran is printed whole under its label, steps run side by side included: its own commands, then
    # what they printed, then its time, and nothing of another step's.
    blocks = re.split(r"^(\[\d+/\d+\] .*)$", result.stdout, flags=re.MULTILINE)
    for step in STEPS[2:]:
        if step.not_run_because:
            continue
        block = blocks[blocks.index(step.label()) + 1].strip("\n").split("\n\nAll steps passed")[0].splitlines()
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


# Stand-ins for the lessons, for the runner's own behaviour: step 7 fails while steps 6 and 9 run beside it.
NOTEBOOK_THAT_LOGS_A_MODEL_FOLDER = [
    "import pathlib",  # the imports cell
    "folder = pathlib.Path('mlartifacts/1/models/m-0/artifacts')\nfolder.mkdir(parents=True)\n"
    "(folder / 'MLmodel').touch()\nprint('the notebook speaks')",
]
INFERENCE_THAT_FAILS_BY_ALIAS = """
import pathlib, sys, time
if sys.argv[1].endswith("@champion"):
    for _ in range(300):  # fail once step 9 runs beside this step
        if pathlib.Path("batch.pid").exists():
            break
        time.sleep(0.1)
    print("step 7 speaks", flush=True)
    print("step 7 fails", file=sys.stderr)
    sys.exit(3)
time.sleep(1)
print("step 6 speaks from", sys.argv[1])
"""
BATCH_SCORING_THAT_RUNS_ON = (
    "import os, pathlib, time\npathlib.Path('batch.pid').write_text(str(os.getpid()))\ntime.sleep(300)"
)


def test_a_step_that_fails_beside_others_stops_the_tutorial_with_its_own_output(fresh_checkout):
    import nbformat

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code) for code in NOTEBOOK_THAT_LOGS_A_MODEL_FOLDER]
    )
    nbformat.write(notebook, fresh_checkout / "ml_project.ipynb")
    (fresh_checkout / "get_started.py").write_text("print('the smoke test speaks')")
    (fresh_checkout / "model_inferencing.py").write_text(INFERENCE_THAT_FAILS_BY_ALIAS)
    (fresh_checkout / "batch_scoring.py").write_text(BATCH_SCORING_THAT_RUNS_ON)
    port = server_process.free_port()

    result = make_tutorial(fresh_checkout, port)

    # The step's own exit code, its error last, and the port free again.
    assert result.stderr.splitlines()[-2:] == [
        "error: step 7 failed with exit code 3 (see above)",
        "make: *** [Makefile:66: tutorial] Error 3",
    ], result.stderr
    assert not server_process.port_is_taken(port)
    # Step 9 was running beside it, and is stopped: no step left behind.
    batch_pid = int((fresh_checkout / "batch.pid").read_text())
    left_running = server_process.group_is_alive(batch_pid)
    server_process.stop_group(batch_pid, grace_seconds=1)  # what the tutorial left, if anything
    assert not left_running
    # The guide's order up to the failing step, each step whole, then that step's own output, and nothing after.
    after_6 = result.stdout.split(f"{STEPS[5].label()}\n")[1]
    assert re.match(r"      \$ python model_inferencing.py mlartifacts/1/models/m-0/artifacts\n", after_6)
    assert "step 6 speaks from mlartifacts/1/models/m-0/artifacts\n      done in" in after_6
    after_7 = after_6.split(f"{STEPS[6].label()}\n")[1]
    assert after_7 == f"      $ {STEPS[6].command}\nstep 7 speaks\n", after_7
    assert "step 7 fails\n" in result.stderr and "[8/" not in result.stdout and "All steps passed" not in result.stdout
