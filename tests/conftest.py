"""One throwaway MLflow tracking server for the whole test session, and a way to run the guide's steps against it."""

import inspect
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from maintainer.checkout import fresh_copy
from tutorial import check_python, server_process

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# The session server's database before any test wrote to it: migrated, with MLflow's Default experiment.
# The tracking_server fixture keeps it, in the session's temp folder; later servers start on a copy.
MIGRATED_DATABASE: list[Path] = []

# A deprecated call in the guide's code fails its step, as it fails the suite (see pyproject.toml).
# After the rule come the exceptions: warnings that libraries raise from their own internals, which no change to
# the guide can avoid. Python applies the first entry that matches, reading from the last one given. PYTHONWARNINGS
# matches a message as a literal prefix, ignoring case, and a module by its exact name: each exception gives the
# whole message (as far as it carries no colon, which PYTHONWARNINGS cannot hold) and, where it is fixed, the module
# the warning is attributed to. docs/testing.md ("Warnings are errors") lists them; a test checks they go no wider.
STRICT_WARNING_EXEMPTIONS = [
    # Jupyter's kernel (tornado) asks asyncio for an event loop before starting one; Python 3.12+ warns. The whole
    # message; the caller it is attributed to differs between kernel versions, so no module.
    "ignore:There is no current event loop:DeprecationWarning",
    # The `mlflow` command imports MLflow's own SQLAlchemy store at start-up (for `mlflow models serve` too), and
    # SQLAlchemy 2.1 deprecates a loader option that store's models use. SQLAlchemy attributes it to that store.
    "ignore:The ``noload`` loader strategy is deprecated and will be removed in a future release.  This option"
    " produces incorrect results by returning ``None`` for related items.:DeprecationWarning"
    ":mlflow.store.tracking.sqlalchemy_store",
]
STRICT_WARNINGS = ",".join(["error::DeprecationWarning", "error::FutureWarning", *STRICT_WARNING_EXEMPTIONS])


def pytest_configure(config):
    """The same exemptions in the tests' own process (after pyproject.toml's rule, so they take precedence)."""
    for exemption in STRICT_WARNING_EXEMPTIONS:
        config.addinivalue_line("filterwarnings", exemption)


# A bound on a path that must fail fast, such as a missing server: it proves "seconds, not minutes" (MLflow's
# own retries take minutes). It is generous on purpose, so a busy machine does not fail the suite;
# `make bench` measures the real figure.
SECONDS_NOT_MINUTES = 30


@dataclass
class TrackingServer:
    url: str
    root: Path  # holds mlflow.db and mlartifacts/, like the repository folder does for `mlflow ui`

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@contextmanager
def running_tracking_server(root: Path, workers: int = 1):
    """A real `mlflow server` on a free loopback port, keeping mlflow.db and mlartifacts/ in `root`.

    A new server starts on a copy of the session server's database as it was before any test wrote to it:
    migrated already, so the server skips MLflow's migrations (about a second each start).
    """
    template = MIGRATED_DATABASE[0] if MIGRATED_DATABASE else None
    with server_process.running_tracking_server(root, workers, database_template=template) as url:
        yield TrackingServer(url=url, root=root)


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """One throwaway tracking server for the whole session, its data in a temp dir."""
    with running_tracking_server(tmp_path_factory.mktemp("tracking-server")) as server:
        template = tmp_path_factory.mktemp("migrated-database") / "mlflow.db"
        with sqlite3.connect(server.root / "mlflow.db") as fresh, sqlite3.connect(template) as copy:
            fresh.backup(copy)
        MIGRATED_DATABASE.append(template)
        yield server


# The platforms the README names, as uv spells them: Linux (a Codespace, GitHub's runners, ARM laptops), macOS on
# Apple silicon, and Windows.
READER_PLATFORMS = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
]


@dataclass
class WheelCheck:
    python: str
    platform: str
    returncode: int
    output: str


def resolve_lock_to_wheels(pythons: list[str], stop: threading.Event) -> list[WheelCheck]:
    """Would requirements.txt install from wheels alone, for each of these Pythons on each reader platform?

    Only 3.10 to 3.13 interpreters are on this machine, so uv answers for the others from PyPI's file lists:
    one online pass fetches them for every platform at once, then each pair is resolved from uv's cache.
    """
    uv = [str(VENV_BIN / "uv"), "pip", "compile", "requirements.txt", "--only-binary", ":all:", "--no-deps", "--quiet"]
    uv += ["--output-file", os.devnull]
    subprocess.run([*uv, "--universal", "--python-version", pythons[0]], cwd=REPO, capture_output=True, timeout=300)
    checks = []
    for python in pythons:
        for platform in READER_PLATFORMS:
            if stop.is_set():
                return checks
            options = ["--offline", "--python-version", python, "--python-platform", platform]
            result = subprocess.run([*uv, *options], cwd=REPO, capture_output=True, text=True, timeout=120)
            checks.append(WheelCheck(python, platform, result.returncode, result.stderr.strip()))
    return checks


@pytest.fixture(scope="session", autouse=True)
def lock_wheel_checks(request):
    """resolve_lock_to_wheels for every supported Python and the next one, started with the session.

    Its uv calls mostly wait on PyPI, so they run in a thread beside the other tests; test_requirements.py
    reads the result. A session that does not run that test does not start them.
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


def git(*arguments: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run git in `cwd`, trusting that checkout even when another user owns it.

    GitHub's container jobs run as root in a workspace that the runner's user owns, and git refuses such a
    "dubious" repository unless told to trust it (actions/runner#2033). `-c safe.directory` trusts this one
    checkout for this one command, and changes no git configuration of the machine.
    """
    command = ["git", "-c", f"safe.directory={cwd}", *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def missing_service(reason: str) -> None:
    """Skip a test that needs a service this machine lacks; in CI, where .ci/run installs it, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. In CI this is a failure: .ci/run installs what the tests need.")
    pytest.skip(reason)


def step_env(tracking_uri: str) -> dict:
    """The environment of a reader who activated .venv and points MLflow at `tracking_uri`."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PYTHONWARNINGS": STRICT_WARNINGS,
        "MLFLOW_DISABLE_TELEMETRY": "true",  # the tests' traffic stays on loopback
    }


def alone_in_a_folder(teaching_file: str, folder: Path) -> Path:
    """Copy one teaching file into an empty folder, and return the folder to run it in.

    The tests run get_started.py, model_inferencing.py and the notebook this way: each must work when a
    reader copies it alone into another project, with nothing else of this repository beside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    assert not any(folder.iterdir()), f"{folder} is not empty"
    shutil.copy(REPO / teaching_file, folder)
    return folder


def run_command(
    command: str, tracking_uri: str, cwd: Path = REPO, timeout: float = 300, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a command as the README shows it (e.g. "python get_started.py") and capture its output."""
    env = {**step_env(tracking_uri), **(extra_env or {})}
    return run_as_a_group(shlex.split(command), cwd=cwd, env=env, timeout=timeout)


def run_as_a_group(command: list, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run with its output captured, in a process group of its own: on a timeout, the whole group is
    killed, so a `make` that started a server or a kernel leaves nothing behind (subprocess.run kills only `make`)."""
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str, exit_code: int = 2) -> None:
    """A user's mistake ends with exit code 2 and a single `error:` line that says what to do."""
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, result.stderr
    for text in expected:
        assert text in lines[-1], lines[-1]


@dataclass
class UnlikeTheChampion:
    """A model whose predictions differ from the champion's, reachable every way the guide names a model."""

    model_id: str
    artifact_location: str  # mlflow-artifacts:/<experiment id>/models/m-<id>/artifacts, as the UI shows it
    version_uri: str
    alias_uri: str
    predictions: list  # on its own input example


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


@pytest.fixture(scope="session")
def notebook_run(tracking_server, tmp_path_factory) -> subprocess.CompletedProcess:
    """The notebook, executed headless once against the session's server, as the README shows it,
    copied alone into an empty folder."""
    from guide_commands import RUN_NOTEBOOK

    folder = alone_in_a_folder("ml_project.ipynb", tmp_path_factory.mktemp("notebook-alone"))
    result = run_command(RUN_NOTEBOOK, tracking_server.url, cwd=folder, timeout=600)
    assert result.returncode == 0, f"the notebook failed:\n{result.stdout}\n{result.stderr}"
    return result
