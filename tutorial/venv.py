"""The venv that runs this code, and the environment of a terminal where it is activated."""

import os
import sys
from pathlib import Path

# .venv/bin, or .venv-latest/bin under `make test-latest`: the folder of the Python running this.
VENV_BIN = Path(sys.executable).parent


def with_venv_on_path(env: dict, venv_bin: Path = VENV_BIN) -> dict:
    """`env` with a venv's bin folder (this one's, unless told) first on PATH, as `source .venv/bin/activate` puts it.

    The steps start `python`, `jupyter`, `mlflow` and (for `mlflow models serve`) `uvicorn` by name.
    """
    return {**env, "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', os.defpath)}"}
