"""`make clean` and `make clean-data`: nothing deletes a reader's runs without asking, or half-way.

Most tests work in a fresh copy of the repository that holds a real mlflow.db (a copy of the session server's)
and an mlartifacts/ folder, as the tutorial leaves them (the checkout_with_runs fixture).
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import fingerprint, make_in, missing_service, port_of
from mlflow import MlflowClient
from mlflow.entities import ViewType

from maintainer.checkout import reader_env
from tutorial import server_process
from tutorial.venv import VENV_BIN


def test_make_clean_leaves_the_runs_alone(checkout_with_runs):
    before = fingerprint(checkout_with_runs)
    (checkout_with_runs / "mlflow-ui.log").write_text("a log to clean\n")

    result = make_in(checkout_with_runs, "clean")

    assert result.returncode == 0, result.stderr
    assert fingerprint(checkout_with_runs) == before
    assert not (checkout_with_runs / "mlflow-ui.log").exists()
    assert not (checkout_with_runs / ".venv").exists()  # the link to the test venv; the venv itself stays


def test_make_clean_data_says_what_it_would_delete_and_deletes_only_when_confirmed(checkout_with_runs, tmp_path):
    # Counted in the copy's own mlflow.db (a copy of it, left untouched), not on the live server others write to.
    shutil.copy(checkout_with_runs / "mlflow.db", tmp_path / "counted.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'counted.db'}")
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=5000)
    models = client.search_registered_models()
    before = fingerprint(checkout_with_runs)
    free_port = f"PORT={server_process.free_port()}"  # no server there

    result = make_in(checkout_with_runs, "clean-data", free_port)

    assert result.returncode == 0, result.stderr
    expected = f"mlflow.db: {len(experiments)} experiments, {len(runs)} runs and {len(models)} registered model"
    assert expected in result.stdout, result.stdout
    assert f"make clean-data {free_port} CONFIRM=1" in result.stdout  # the hint keeps the reader's port
    assert fingerprint(checkout_with_runs) == before

    # Step 9's files, as the guide and a failed Spark job leave them.
    (checkout_with_runs / "flowers.csv").write_text("sepal length (cm)\n5.1\n")
    (checkout_with_runs / "flowers-predictions.parquet").write_bytes(b"")
    for folder in ("flowers-predictions-spark", "flowers-predictions-spark.partial"):
        (checkout_with_runs / folder).mkdir()
        (checkout_with_runs / folder / "part-0.parquet").write_bytes(b"")

    result = make_in(checkout_with_runs, "clean-data", "CONFIRM=1", free_port)

    assert result.returncode == 0, result.stderr
    listed = [line.split(":")[0].strip() for line in result.stdout.splitlines() if line.startswith("  flowers")]
    assert listed == [
        "flowers-predictions-spark/",
        "flowers-predictions-spark.partial/",
        "flowers-predictions.parquet",
        "flowers.csv",
    ]
    assert not (checkout_with_runs / "mlflow.db").exists() and not (checkout_with_runs / "mlartifacts").exists()
    assert not [path for path in checkout_with_runs.iterdir() if path.name.startswith("flowers")]


def test_make_clean_data_counts_while_a_server_answers_and_refuses_only_to_delete(checkout_with_runs, tracking_server):
    before = fingerprint(checkout_with_runs)
    port = port_of(tracking_server.url)

    result = make_in(checkout_with_runs, "clean-data", f"PORT={port}")

    assert result.returncode == 0, result.stderr
    assert "mlflow.db: " in result.stdout and f"make clean-data PORT={port} CONFIRM=1" in result.stdout, result.stdout

    result = make_in(checkout_with_runs, "clean-data", "CONFIRM=1", f"PORT={port}")

    assert result.returncode != 0
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert f"a tracking server answers on port {port}" in error
    assert fingerprint(checkout_with_runs) == before


def test_make_clean_data_refuses_while_a_server_on_another_port_has_the_database_open(
    fresh_checkout, tracking_server, notebook_run
):
    # The session's server, on a port of its own, has this database open: the checkout's mlflow.db points to it.
    (fresh_checkout / "mlflow.db").symlink_to(tracking_server.root / "mlflow.db")
    shutil.copytree(tracking_server.root / "mlartifacts", fresh_checkout / "mlartifacts")
    tracking_server.client().search_experiments()  # the server's worker has its connection open

    result = make_in(fresh_checkout, "clean-data", "CONFIRM=1", f"PORT={server_process.free_port()}")

    assert result.returncode != 0
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "mlflow.db is open in process" in error
    assert (fresh_checkout / "mlflow.db").exists() and (fresh_checkout / "mlartifacts").exists()


@pytest.mark.parametrize("moment", ["between-the-renames", "while-deleting"])
def test_an_interrupted_clean_data_leaves_the_runs_whole_or_gone(checkout_with_runs, monkeypatch, moment):
    """Ctrl+C while the files are moved aside, or while they are deleted: never a database without its artifacts,
    nor the reverse."""
    from tutorial import clean_data

    monkeypatch.setattr(clean_data, "REPO", checkout_with_runs)
    for name in ("DATABASE", "ARTIFACTS", "BEING_DELETED"):
        monkeypatch.setattr(clean_data, name, checkout_with_runs / getattr(clean_data, name).name)
    monkeypatch.setattr(sys, "argv", ["clean_data", "--yes", "--port", str(server_process.free_port())])

    real_unlink, real_rename, done = os.unlink, Path.rename, []

    def ctrl_c_after_the_first_file(path, *args, **kwargs):
        if done:
            raise KeyboardInterrupt
        real_unlink(path, *args, **kwargs)
        done.append(path)

    def ctrl_c_after_the_first_rename(path, target):
        moved = real_rename(path, target)
        if not done:
            done.append(path)
            # A real SIGINT, to this thread: `make clean-data` has no other, but pytest's worker has (execnet's).
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return moved

    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with monkeypatch.context() as interrupted:
            if moment == "while-deleting":
                interrupted.setattr(os, "unlink", ctrl_c_after_the_first_file)  # Path.unlink and rmtree call it
            else:
                interrupted.setattr(Path, "rename", ctrl_c_after_the_first_rename)
            with pytest.raises(KeyboardInterrupt):
                clean_data.main()
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    assert done

    database, artifacts = (checkout_with_runs / "mlflow.db").exists(), (checkout_with_runs / "mlartifacts").exists()
    assert database == artifacts, f"left mlflow.db: {database}, mlartifacts/: {artifacts}"
    clean_data.main()  # the next `make clean-data CONFIRM=1` finishes the job
    assert not any(checkout_with_runs.glob("mlflow.db*")) and not (checkout_with_runs / "mlartifacts").exists()
    assert not clean_data.BEING_DELETED.exists()


def test_make_clean_ignores_a_venv_variable_from_the_environment(checkout_with_runs, tmp_path):
    """A reader who exports VENV for their own scripts keeps that folder: make takes VENV from its command line."""
    readers_own_venv = tmp_path / "my-project-venv"
    (readers_own_venv / "bin").mkdir(parents=True)

    result = subprocess.run(
        ["make", "clean"], cwd=checkout_with_runs, env=reader_env(VENV=str(readers_own_venv)), capture_output=True
    )

    assert result.returncode == 0, result.stderr
    assert (readers_own_venv / "bin").is_dir()
    assert not (checkout_with_runs / ".venv").exists()  # the checkout's own venv (here, the link) is what goes


@pytest.mark.parametrize("target", ["clean-data", "doctor"])
def test_the_targets_on_plain_python3_run_on_the_python_a_mac_ships(checkout_with_runs, target):
    """`make clean-data` and `make doctor` run on plain python3, not the venv: on a Mac that is still 3.9, which the
    guide itself does not support. They must work there, to delete the runs and to say which Python to install."""
    # pyenv's 3.9 on the test machines; elsewhere the one .ci/run has uv install (GitHub's python:3.11 image).
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    python39 = next(iter(sorted(pyenv_root.glob("versions/3.9.*/bin/python3.9"))), None)
    if python39 is None:
        found = subprocess.run([VENV_BIN / "uv", "python", "find", "3.9"], capture_output=True, text=True)
        python39 = found.stdout.strip() if found.returncode == 0 else None
    if python39 is None:
        missing_service(f"no Python 3.9 under {pyenv_root} or uv's: .ci/run installs one (`uv python install 3.9`)")
    free_port = f"PORT={server_process.free_port()}"

    result = make_in(checkout_with_runs, target, f"PYTHON={python39}", free_port)

    assert "Traceback" not in result.stderr, result.stderr
    if target == "clean-data":
        assert result.returncode == 0 and f"make clean-data {free_port} CONFIRM=1" in result.stdout, result.stdout
    else:
        assert "FAIL python:" in result.stdout and "is Python 3.9" in result.stdout, result.stdout
