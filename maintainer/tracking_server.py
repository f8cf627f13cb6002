"""A throwaway `mlflow server` for the tests and `make screenshots`: the guide itself uses `mlflow ui`."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from tutorial import server_process
from tutorial.run import WITHOUT_JOB_RUNNER
from tutorial.venv import VENV_BIN

# The settings of every server the tests start, and of the team server's compose file (a test checks that they agree).
SERVER_SETTINGS = {
    **WITHOUT_JOB_RUNNER,  # as `make tutorial` starts its server
    # Throwaway servers send no usage data: their traffic stays on loopback.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

# Registry webhooks to the scoring service of docs/serving.md, which listens on a private address over plain HTTP; a
# new webhook in effect within 5 s. The page's server command and the team server's compose file set these, and a
# key (MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY) of their own.
WEBHOOK_SETTINGS = {
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_CACHE_TTL": "5",
}


@dataclass
class TrackingServer:
    url: str
    root: Path  # holds mlflow.db and mlartifacts/, as the repository folder does for `mlflow ui`

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@contextmanager
def running_tracking_server(
    root: Path, database_template: Path | None = None, workers: int = 1
) -> Iterator[TrackingServer]:
    """A real `mlflow server` on a free loopback port, keeping mlflow.db and mlartifacts/ in `root`; stopped after."""
    server, process = start_tracking_server(root, database_template, workers)
    try:
        yield server
    finally:
        server_process.stop(process)


def start_tracking_server(
    root: Path, database_template: Path | None = None, workers: int = 1, settings: dict | None = None
) -> tuple[TrackingServer, subprocess.Popen]:
    """Start the server and wait until it is healthy; whoever holds the process stops it (server_process.stop).

    `database_template`, an empty database that MLflow has already migrated, becomes root/mlflow.db unless there
    is one: on a new database, the server first runs every one of MLflow's migrations. `settings` add to
    SERVER_SETTINGS.
    """
    if database_template is not None and not (root / "mlflow.db").exists():
        shutil.copyfile(database_template, root / "mlflow.db")
    port = server_process.free_port()
    # fmt: off
    command = [
        str(VENV_BIN / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "mlartifacts"),
        # One worker is ready sooner than the default four, and one client sends one request at a time.
        "--workers", str(workers),
    ]
    # fmt: on
    log_file = root / "server.log"
    env = {**os.environ, **SERVER_SETTINGS, **(settings or {})}
    process = server_process.start(command, log_file, cwd=root, env=env)
    try:
        server_process.wait_until_healthy(process, f"http://127.0.0.1:{port}/health", log_file)
    except BaseException:
        server_process.stop(process)
        raise
    return TrackingServer(url=f"http://127.0.0.1:{port}", root=root), process
