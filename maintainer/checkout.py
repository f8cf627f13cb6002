"""A fresh copy of the repository and a reader's shell environment: shared by `make bench` and the tests."""

import os
import shutil
from pathlib import Path

from tutorial.venv import VENV_BIN

REPO = Path(__file__).resolve().parent.parent
VENV = VENV_BIN.parent  # the venv running this: .venv, or .venv-latest under `make test-latest`
# What a fresh clone does not have: git's folder, venvs, the tutorial's data and logs, caches.
NOT_IN_A_FRESH_CLONE = shutil.ignore_patterns(
    ".git", ".venv*", "mlflow.db", "mlartifacts", "*.log", "__pycache__", ".*cache", "flowers.csv", "*-predictions*"
)


def fresh_copy(destination: Path) -> Path:
    """Copy the repository as a fresh clone has it, with the running venv linked in instead of a new one."""
    shutil.copytree(REPO, destination, ignore=NOT_IN_A_FRESH_CLONE)  # copy2 keeps mtimes: make sees the venv current
    # As .venv whichever venv runs this (.venv-latest under `make test-latest`): `make` in the copy looks for .venv.
    (destination / ".venv").symlink_to(VENV)
    return destination


def reader_env(**changes: str | None) -> dict:
    """A reader's shell: no MLflow settings and no outer make's variables; `changes` set (or, with None, unset) more."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MLFLOW_", "MAKE"))}
    env.update(changes)
    return {name: value for name, value in env.items() if value is not None}
