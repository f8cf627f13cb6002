"""The suite's fixtures: one throwaway MLflow tracking server for the session, the notebook run once against it,
and what several test files share. The helpers they use are plain functions in helpers.py."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from filelock import FileLock
from guide_commands import RUN_NOTEBOOK
from helpers import (
    REPO,
    STRICT_WARNING_EXEMPTIONS,
    UnlikeTheChampion,
    alone_in_a_folder,
    copy_the_data,
    run_command,
)

from maintainer.checkout import fresh_copy
from maintainer.tracking_server import TrackingServer, running_tracking_server, start_tracking_server
from tutorial import server_process
from tutorial.names import CHAMPION_URI


def pytest_configure(config):
    """The warnings' exemptions in the tests' own process (after pyproject.toml's rule, so they take precedence)."""
    for exemption in STRICT_WARNING_EXEMPTIONS:
        config.addinivalue_line("filterwarnings", exemption)


def once_per_run(tmp_path_factory, worker_id: str, name: str, produce):
    """`produce()` once for the whole run, its JSON result shared by every worker: pytest-xdist's pattern for a
    session fixture that must run once (its docs, "Making session-scoped fixtures execute only once"). The first
    worker to ask produces it while holding the lock; the others wait, then read the file it wrote."""
    if worker_id == "master":  # not under xdist (`-n 0`, or a nested run): one process, nothing to share
        return produce()
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    result = shared / f"{name}.json"
    with FileLock(shared / f"{name}.lock"):
        if not result.is_file():
            result.write_text(json.dumps(produce()))
        return json.loads(result.read_text())


def shared_folder(tmp_path_factory, worker_id: str, name: str) -> Path:
    """A folder for what the workers share, in the run's folder; a worker's own one without xdist."""
    if worker_id == "master":
        return tmp_path_factory.mktemp(name)
    folder = tmp_path_factory.getbasetemp().parent / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory, worker_id) -> Path:
    """An empty mlflow.db that MLflow has migrated already, with its Default experiment: every server the tests
    start takes a copy, and skips the migrations that a new database runs at start-up."""

    def migrate() -> str:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        database = shared_folder(tmp_path_factory, worker_id, "migrated-database") / "mlflow.db"
        # The artifact root a server with --artifacts-destination gives its Default experiment.
        SqlAlchemyStore(f"sqlite:///{database}", "mlflow-artifacts:/").engine.dispose()
        return str(database)

    return Path(once_per_run(tmp_path_factory, worker_id, "migrated-database", migrate))


# The session server's process group, when a worker started it for every worker: the controller stops it.
SESSION_SERVER = "session-server"


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory, worker_id, migrated_database) -> TrackingServer:
    """One throwaway tracking server for the whole run, its data in a temp dir, shared by every worker.

    Under xdist, the first worker that needs it starts it, and it outlives that worker: the controller stops it
    when the last worker has ended (pytest_sessionfinish below)."""
    root = shared_folder(tmp_path_factory, worker_id, "tracking-server")
    if worker_id == "master":
        with running_tracking_server(root, migrated_database) as server:
            yield server
        return

    def start() -> dict:
        server, process = start_tracking_server(root, migrated_database)
        return {"url": server.url, "process_group": process.pid}

    yield TrackingServer(url=once_per_run(tmp_path_factory, worker_id, SESSION_SERVER, start)["url"], root=root)


def pytest_sessionfinish(session):
    """In xdist's controller, once every worker has ended: stop the session server, if a worker started one."""
    if hasattr(session.config, "workerinput") or not session.config.getoption("numprocesses", None):
        return  # a worker, or a run without xdist: the fixture's own teardown stops what it started
    # xdist gives each worker a folder in the controller's base temp (xdist/workermanage.py does the same).
    started = session.config._tmp_path_factory.getbasetemp() / f"{SESSION_SERVER}.json"
    if started.is_file():
        server_process.stop_group(json.loads(started.read_text())["process_group"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the session server shows the end of that server's log."""
    report = yield
    server = item.funcargs.get("tracking_server") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(server, TrackingServer):
        report.sections.append(("session server log", server_process.tail(server.root / "server.log", 40)))
    return report


@pytest.fixture
def fresh_checkout(tmp_path) -> Path:
    """A copy of the repository as a fresh clone has it, in a temp folder, with the test venv linked in."""
    return fresh_copy(tmp_path / "mlflow-starter")


@pytest.fixture
def checkout_with_runs(fresh_checkout, tracking_server, notebook_run):
    """A fresh copy with the session server's runs and models in mlflow.db and mlartifacts/."""
    copy_the_data(tracking_server.root, fresh_checkout)
    return fresh_checkout


@pytest.fixture(scope="session")
def notebook_run(tracking_server, tmp_path_factory, worker_id) -> dict:
    """The notebook, executed headless once against the session's server, as the README shows it, copied alone
    into an empty folder (the runner, tutorial/, from the repository). What it printed, and the executed copy."""

    def run_the_notebook() -> dict:
        folder = alone_in_a_folder("ml_project.ipynb", tmp_path_factory.mktemp("notebook-alone"))
        extra_env = {"PYTHONPATH": str(REPO)}
        result = run_command(RUN_NOTEBOOK, tracking_server.url, cwd=folder, timeout=600, extra_env=extra_env)
        assert result.returncode == 0, f"the notebook failed:\n{result.stdout}\n{result.stderr}"
        return {"stdout": result.stdout, "stderr": result.stderr, "executed": str(folder / "ml_project-run.ipynb")}

    return once_per_run(tmp_path_factory, worker_id, "notebook-run", run_the_notebook)


@pytest.fixture(scope="session")
def champion(tracking_server, notebook_run):
    """The champion, loaded in this process: what a server that serves it must answer."""
    import mlflow

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
        return mlflow.pyfunc.load_model(CHAMPION_URI)


@pytest.fixture(scope="session")
def unlike_the_champion(tracking_server, notebook_run, tmp_path_factory, worker_id) -> UnlikeTheChampion:
    """A model that answers 2 (virginica) for every flower, logged and registered on the session's server.

    Every model the notebook logs predicts [0, 0, 1, 0, 0] on the same input example, so a script that loaded the
    champion whatever it was asked would pass a test on them. This one, asked for by its folder, path, id, version
    or alias, must answer [2, 2, 2, 2, 2] on the first five flowers (setosas, which the champion calls 0).
    """

    def log_and_register() -> dict:
        import mlflow
        from sklearn.datasets import load_iris
        from sklearn.dummy import DummyClassifier

        features, species = load_iris(return_X_y=True, as_frame=True)  # its signature names the features too
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
        unlike = UnlikeTheChampion(
            model_id=info.model_id,
            artifact_location=client.get_logged_model(info.model_id).artifact_location,
            version_uri=f"models:/always-virginica/{info.registered_model_version}",
            alias_uri="models:/always-virginica@challenger",
            predictions=[2] * 5,
        )
        return asdict(unlike)

    return UnlikeTheChampion(**once_per_run(tmp_path_factory, worker_id, "unlike-the-champion", log_and_register))
