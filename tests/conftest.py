"""The suite's fixtures: one throwaway MLflow tracking server for the session, the notebook run once against it,
and what several test files share. The helpers they use are plain functions in helpers.py."""

import inspect
import shutil
import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from guide_commands import RUN_NOTEBOOK
from helpers import (
    STRICT_WARNING_EXEMPTIONS,
    UnlikeTheChampion,
    alone_in_a_folder,
    resolve_lock_to_wheels,
    run_command,
)

from maintainer.checkout import fresh_copy
from maintainer.tracking_server import TrackingServer, running_tracking_server
from tutorial import check_python
from tutorial.names import CHAMPION_URI


def pytest_configure(config):
    """The warnings' exemptions in the tests' own process (after pyproject.toml's rule, so they take precedence)."""
    for exemption in STRICT_WARNING_EXEMPTIONS:
        config.addinivalue_line("filterwarnings", exemption)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """An empty mlflow.db that MLflow has migrated already, with its Default experiment: every server the tests
    start takes a copy, and skips the migrations that a new database runs at start-up."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database = tmp_path_factory.mktemp("migrated-database") / "mlflow.db"
    # The artifact root a server with --artifacts-destination gives its Default experiment.
    store = SqlAlchemyStore(f"sqlite:///{database}", "mlflow-artifacts:/")
    store.engine.dispose()
    return database


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory, migrated_database) -> TrackingServer:
    """One throwaway tracking server for the whole session, its data in a temp dir."""
    with running_tracking_server(tmp_path_factory.mktemp("tracking-server"), migrated_database) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def lock_wheel_checks(request):
    """resolve_lock_to_wheels for every supported Python and the next one, started with the session.

    Its uv calls mostly wait on PyPI, so they run in a thread beside the other tests; the lock's test reads the
    result. A session that does not run that test does not start them.
    """
    wanted = any(
        "lock_wheel_checks" in inspect.signature(item.function).parameters
        for item in request.session.items
        if hasattr(item, "function")
    )
    if not wanted:
        yield None
        return
    oldest, newest = check_python.OLDEST, check_python.NEWEST
    pythons = [f"3.{minor}" for minor in range(oldest[1], newest[1] + 2)]  # the supported range, and one beyond
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        checks = pool.submit(resolve_lock_to_wheels, pythons, stop)
        yield checks
        stop.set()  # a run that did not ask for the result (-k, one file) does not wait for all of it


@pytest.fixture
def fresh_checkout(tmp_path) -> Path:
    """A copy of the repository as a fresh clone has it, in a temp folder, with the test venv linked in."""
    return fresh_copy(tmp_path / "mlflow-starter")


@pytest.fixture
def checkout_with_runs(fresh_checkout, tracking_server, notebook_run):
    """A fresh copy with the session server's runs and models in mlflow.db and mlartifacts/."""
    # closing(): a connection's own `with` commits but leaves the file open, and clean-data refuses an open mlflow.db.
    with (
        closing(sqlite3.connect(tracking_server.root / "mlflow.db")) as source,
        closing(sqlite3.connect(fresh_checkout / "mlflow.db")) as copy,
    ):
        source.backup(copy)  # a consistent copy, even of a database in use
    shutil.copytree(tracking_server.root / "mlartifacts", fresh_checkout / "mlartifacts")
    return fresh_checkout


@pytest.fixture(scope="session")
def notebook_run(tracking_server, tmp_path_factory) -> subprocess.CompletedProcess:
    """The notebook, executed headless once against the session's server, as the README shows it,
    copied alone into an empty folder."""
    folder = alone_in_a_folder("ml_project.ipynb", tmp_path_factory.mktemp("notebook-alone"))
    result = run_command(RUN_NOTEBOOK, tracking_server.url, cwd=folder, timeout=600)
    assert result.returncode == 0, f"the notebook failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def champion(tracking_server, notebook_run):
    """The champion, loaded in this process: what a server that serves it must answer."""
    import mlflow

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
        return mlflow.pyfunc.load_model(CHAMPION_URI)


@pytest.fixture(scope="session")
def unlike_the_champion(tracking_server, notebook_run) -> UnlikeTheChampion:
    """A model that answers 2 (virginica) for every flower, logged and registered on the session's server.

    Every model the notebook logs predicts [0, 0, 1, 0, 0] on the same input example, so a script that loaded the
    champion whatever it was asked would pass a test on them. This one, asked for by its folder, path, id, version
    or alias, must answer [2, 2, 2, 2, 2] on the first five flowers (setosas, which the champion calls 0).
    """
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    features, species = load_iris(return_X_y=True)
    model = DummyClassifier(strategy="constant", constant=2).fit(features, species)
    client = tracking_server.client()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
        experiment_id = client.create_experiment("unlike-the-champion")
        # A run name of its own: the UI test counts each run name's links, and the registered model has one too.
        with mlflow.start_run(experiment_id=experiment_id, run_name="constant-classifier"):
            info = mlflow.sklearn.log_model(
                sk_model=model,
                name="always_virginica",
                input_example=features[:5],
                pip_requirements=["scikit-learn"],  # skips MLflow's inference of the requirements
                registered_model_name="always-virginica",
            )
    client.set_registered_model_alias("always-virginica", "challenger", info.registered_model_version)
    return UnlikeTheChampion(
        model_id=info.model_id,
        artifact_location=client.get_logged_model(info.model_id).artifact_location,
        version_uri=f"models:/always-virginica/{info.registered_model_version}",
        alias_uri="models:/always-virginica@challenger",
        predictions=[2] * 5,
    )
