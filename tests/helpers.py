"""The tests' helpers: plain functions and data, imported by the test files (`from helpers import ...`).

The fixtures are in conftest.py; maintainer/docs/testing.md says where a new test goes.
"""

import hashlib
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from maintainer.checkout import reader_env
from tutorial.names import MODEL_NAME
from tutorial.venv import VENV_BIN, with_venv_on_path

REPO = Path(__file__).resolve().parent.parent

# A deprecated call in the guide's code fails its step, as it fails the suite (see pyproject.toml).
# After the rule come the exceptions: warnings that libraries raise from their own internals, which no change to
# the guide can avoid. Python applies the first entry that matches, reading from the last one given. PYTHONWARNINGS
# matches a message as a literal prefix, ignoring case, and a module by its exact name: each exception gives the
# whole message (as far as it carries no colon, which PYTHONWARNINGS cannot hold) and, where it is fixed, the module
# the warning is attributed to. maintainer/docs/testing.md ("Warnings are errors") lists them; a test checks they
# go no wider.
STRICT_WARNING_EXEMPTIONS = [
    # Jupyter's kernel (tornado) asks asyncio for an event loop before starting one; Python 3.12+ warns. The whole
    # message; the caller it is attributed to differs between kernel versions, so no module.
    "ignore:There is no current event loop:DeprecationWarning",
    # The `mlflow` command imports MLflow's own SQLAlchemy store at start-up (for `mlflow models serve` too), and
    # SQLAlchemy 2.1 deprecates a loader option that store's models use. SQLAlchemy attributes it to that store.
    "ignore:The ``noload`` loader strategy is deprecated and will be removed in a future release.  This option"
    " produces incorrect results by returning ``None`` for related items.:DeprecationWarning"
    ":mlflow.store.tracking.sqlalchemy_store",
    # log_model(input_example=<a DataFrame>) compares the column names with a range, which pandas 3 deprecates
    # (a Pandas4Warning, a DeprecationWarning) and attributes to MLflow's code. The message up to its first comma:
    # PYTHONWARNINGS separates its entries with commas, and the rest of the message is only pandas' advice.
    "ignore:Operation with range is deprecated. In a future version these will be treated as scalar-like. To retain"
    " the old behavior:DeprecationWarning:mlflow.models.utils",
    # mlflow.data.from_pandas computes its digest with DataFrame.all(0), whose positional argument pandas 3
    # deprecates (a Pandas4Warning), attributed to MLflow's digest code.
    "ignore:Starting with pandas version 4.0 all arguments of all will be keyword-only.:DeprecationWarning"
    ":mlflow.data.digest_utils",
    # mlflow.models.evaluate drops a dataset's targets column with DataFrame.drop(..., inplace=False), whose inplace
    # keyword pandas 3.1 deprecates (a Pandas4Warning), attributed to MLflow's evaluation dataset.
    "ignore:The inplace keyword in DataFrame.drop is deprecated:DeprecationWarning:mlflow.data.evaluation_dataset",
    # pyspark 4.0's DataFrame.toPandas passes astype(copy=False), whose copy keyword pandas 3 deprecates.
    "ignore:The copy keyword is deprecated and will be removed in a future version.:DeprecationWarning"
    ":pyspark.sql.pandas.types",
]
STRICT_WARNINGS = ",".join(["error::DeprecationWarning", "error::FutureWarning", *STRICT_WARNING_EXEMPTIONS])

# A bound on a path that must fail fast, such as a missing server: it proves "seconds, not minutes" (MLflow's
# own retries take minutes). It is generous on purpose, so a busy machine does not fail the suite;
# `make bench` measures the real figure.
SECONDS_NOT_MINUTES = 30


def makefile_variable(name: str) -> str:
    """The value the Makefile gives `name` (`NAME ?= value` or `NAME := value`)."""
    makefile = (REPO / "Makefile").read_text()
    return re.search(rf"^{name} [?:]= (.+)$", makefile, re.MULTILINE)[1].strip()


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
    """This process's environment, in a terminal where .venv is active and MLflow points at `tracking_uri`.

    Settings a test makes with monkeypatch (a login, a certificate) pass through. For a reader's shell without
    this session's settings, as `make` in a fresh copy sees it, use maintainer.checkout.reader_env.
    """
    return with_venv_on_path(
        {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PYTHONWARNINGS": STRICT_WARNINGS,
            "MLFLOW_DISABLE_TELEMETRY": "true",  # the tests' traffic stays on loopback
        }
    )


def alone_in_a_folder(teaching_file: str, folder: Path) -> Path:
    """Copy one teaching file into an empty folder, and return the folder to run it in.

    The tests run get_started.py, model_inferencing.py and the notebook this way: each must work when a
    reader copies it alone into another project, with nothing else of this repository beside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    assert not any(folder.iterdir()), f"{folder} is not empty"
    shutil.copy(REPO / teaching_file, folder)
    return folder


def copy_the_data(server_root: Path, destination: Path) -> None:
    """A tracking server's mlflow.db and mlartifacts/, copied into `destination` while other tests may write to it."""
    # closing(): a connection's own `with` commits but leaves the file open, and clean-data refuses an open mlflow.db.
    with (
        closing(sqlite3.connect(server_root / "mlflow.db")) as source,
        closing(sqlite3.connect(destination / "mlflow.db")) as copy,
    ):
        source.backup(copy)  # a consistent copy, even of a database in use
    # After the database: every artifact it names is there already.
    shutil.copytree(server_root / "mlartifacts", destination / "mlartifacts")


def notebook_cells(tags: list[str]) -> list:
    """The notebook's code cells with these tags, in the notebook's order: one cell for each tag."""
    notebook = nbformat.reads((REPO / "ml_project.ipynb").read_text(), as_version=4)
    chosen = [cell for cell in notebook.cells if set(cell.metadata.get("tags", [])) & set(tags)]
    assert len(chosen) == len(tags) and all(cell.cell_type == "code" for cell in chosen), "a tag moved or went"
    return chosen


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


def run_in_this_process(script: Path, arguments: list[str], tracking_uri: str, monkeypatch, capfd):
    """`python <script> <arguments>` in the script's folder, run here by runpy: the same code and the same exit
    message as in a new process, without its seconds of `import mlflow`. What the script changes in this process
    (the environment, MLflow's tracking URI, the folder) is undone when the test ends."""
    import mlflow.tracking._tracking_service.utils as tracking

    monkeypatch.chdir(script.parent)
    monkeypatch.setattr(sys, "argv", [script.name, *arguments])
    monkeypatch.setattr(tracking, "_tracking_uri", None)  # as a new process starts: MLflow reads the variable
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    environment, code, exit_message = dict(os.environ), 0, ""
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exited:  # as Python does: a message is printed to stderr, with exit code 1
        code, exit_message = (1, f"{exited.code}\n") if isinstance(exited.code, str) else (exited.code or 0, "")
    finally:  # the lessons' os.environ.setdefault(...)
        for name in os.environ.keys() - environment.keys():
            del os.environ[name]
        os.environ.update(environment)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess([script.name, *arguments], code, out, err + exit_message)


def make_in(checkout: Path, *arguments: str, timeout: float = 120, **env_changes: str) -> subprocess.CompletedProcess:
    """`make <arguments>` in a copy of the repository, from a reader's shell (maintainer.checkout.reader_env)."""
    return run_as_a_group(["make", *arguments], cwd=checkout, env=reader_env(**env_changes), timeout=timeout)


def fingerprint(checkout: Path) -> str:
    """The bytes of mlflow.db and of every file under mlartifacts/: equal fingerprints, nothing lost or changed."""
    digest = hashlib.sha256((checkout / "mlflow.db").read_bytes())
    for path in sorted((checkout / "mlartifacts").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(checkout)).encode() + path.read_bytes())
    return digest.hexdigest()


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    """A user's mistake ends with a non-zero exit code and a single `error:` line that says what to do."""
    assert result.returncode not in (0, None), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, result.stderr
    for text in expected:
        assert text in lines[-1], lines[-1]


def readme_output_after(command: str, page: str = "README.md") -> str:
    """The ```text block right after the block that shows `command` on a page: what it says the command prints."""
    text = (REPO / page).read_text(encoding="utf-8")
    closing = text.index("```\n", text.index(f"\n{command}\n")) + len("```\n")
    assert text.startswith("\n```text\n", closing), f"{page} shows no output under {command!r}"
    start = closing + len("\n```text\n")
    return text[start : text.index("```", start)]


def assert_readme_shows(command: str, printed: str, port: int, page: str = "README.md") -> None:
    """`printed` is the page's block for `command`, line for line: its `...` lines stand for any lines, a `...` in
    a line for any text (a time, a run's name or id), and the reader's port is 5000."""
    shown = readme_output_after(command, page)
    lines = [
        r"(?:.*\n)*?" if line == "..." else ".*?".join(map(re.escape, line.split("..."))) + r"\n"
        for line in shown.splitlines()
    ]
    printed = printed.replace(f"127.0.0.1:{port}", "127.0.0.1:5000").strip("\n") + "\n"
    assert re.fullmatch("".join(lines), printed), f"{page} shows:\n{shown}\n`{command}` printed:\n{printed}"


def champion_folder(tracking_server) -> Path:
    """The champion's files on the server's disk: mlartifacts/<experiment>/models/<the logged model it came from>."""
    model_id = tracking_server.client().get_model_version_by_alias(MODEL_NAME, "champion").source.split("/")[-1]
    [folder] = (tracking_server.root / "mlartifacts").glob(f"*/models/{model_id}/artifacts")
    return folder


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    """POST a JSON body; the status and the JSON answer, an error's too."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def dataframe_split(rows: pd.DataFrame) -> bytes:
    """A request body for the scoring server: the rows by their column names, as step 8 sends them."""
    return json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)}).encode()


@dataclass
class UnlikeTheChampion:
    """A model whose predictions differ from the champion's, reachable every way the guide names a model."""

    model_id: str
    artifact_location: str  # mlflow-artifacts:/<experiment id>/models/m-<id>/artifacts, as the UI shows it
    version_uri: str
    alias_uri: str
    predictions: list  # on its own input example


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


def resolve_lock_to_wheels(pythons: list[str]) -> list[WheelCheck]:
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
            options = ["--offline", "--python-version", python, "--python-platform", platform]
            result = subprocess.run([*uv, *options], cwd=REPO, capture_output=True, text=True, timeout=120)
            checks.append(WheelCheck(python, platform, result.returncode, result.stderr.strip()))
    return checks
