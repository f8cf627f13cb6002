"""The files around the guide: VS Code's settings, the dev container, GitHub's workflow and the pre-commit hooks.

GitHub's runners cannot run here, so the workflow is checked statically, with actionlint.
"""

import json
import os
import re
import shlex
import subprocess

import pytest
import yaml
from guide_commands import INFER_BY_ALIAS, RUN_NOTEBOOK, SMOKE_TEST
from helpers import REPO, git, makefile_variable, missing_service

from maintainer.checkout import reader_env
from tutorial.steps import BATCH_SCORING, TRACKING_SERVER
from tutorial.venv import VENV_BIN

MAKEFILE = (REPO / "Makefile").read_text()
VSCODE_SETTINGS = json.loads((REPO / ".vscode/settings.json").read_text())
VSCODE_EXTENSIONS = json.loads((REPO / ".vscode/extensions.json").read_text())
DEV_CONTAINER = json.loads((REPO / ".devcontainer/devcontainer.json").read_text())
WORKFLOW = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())


def test_the_yaml_files_parse():
    assert yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
    assert WORKFLOW["jobs"]


def test_vscode_and_the_dev_container_use_the_makefiles_venv():
    venv = makefile_variable("VENV")
    # The venv's folder, not its bin/python: VS Code finds the interpreter in it, bin/python on Linux and macOS,
    # Scripts\python.exe on Windows (the setting takes "a folder containing the Python interpreter").
    assert VSCODE_SETTINGS["python.defaultInterpreterPath"] == f"${{workspaceFolder}}/{venv}"
    container_settings = DEV_CONTAINER["customizations"]["vscode"]["settings"]
    assert container_settings["python.defaultInterpreterPath"] == f"${{containerWorkspaceFolder}}/{venv}/bin/python"
    assert VSCODE_SETTINGS["jupyter.notebookFileRoot"] == "${workspaceFolder}"  # notebooks run from the root


def test_vscode_recommends_the_python_and_jupyter_extensions_and_so_does_the_dev_container():
    assert set(VSCODE_EXTENSIONS["recommendations"]) == {"ms-python.python", "ms-toolsai.jupyter"}
    assert DEV_CONTAINER["customizations"]["vscode"]["extensions"] == VSCODE_EXTENSIONS["recommendations"]


def test_the_dev_container_runs_a_real_target_and_forwards_the_ui_port():
    command = shlex.split(DEV_CONTAINER["postCreateCommand"])
    targets = re.findall(r"^([a-z-]+):", MAKEFILE, re.MULTILINE)
    assert command[0] == "make" and command[1] in targets, command
    port = int(makefile_variable("PORT"))
    assert DEV_CONTAINER["forwardPorts"] == [port]
    assert DEV_CONTAINER["portsAttributes"][str(port)]["label"] == "MLflow UI"
    assert "3.11" in DEV_CONTAINER["image"]


def test_the_env_file_vscode_reads_is_ignored_and_the_settings_are_not():
    assert VSCODE_SETTINGS["python.envFile"] == "${workspaceFolder}/.env"
    files = [".env", ".vscode/settings.json", ".vscode/extensions.json"]
    ignored = git("check-ignore", *files)
    assert ignored.stdout.split() == [".env"], ignored.stderr


def test_what_the_guide_writes_is_ignored_by_git():
    """The tutorial's and step 9's outputs, which a reader's `git status` should not list; and the lessons are not."""
    written = [
        "mlflow.db",
        "mlartifacts/1/models/m-0/artifacts/MLmodel",
        "mlflow-ui.log",
        "ml_project-run.ipynb",
        "flowers.csv",
        "flowers-predictions.parquet",
        ".flowers-predictions.parquet.partial",
        "flowers-predictions-spark/part-0.parquet",
        "flowers-predictions-spark.partial/part-0.parquet",
        "flowers-predictions-spark.previous/part-0.parquet",
    ]
    lessons = ["get_started.py", "ml_project.ipynb", "model_inferencing.py", "batch_scoring.py"]
    ignored = git("check-ignore", *written, *lessons)
    assert ignored.stdout.split() == written, ignored.stderr


def test_the_workflows_pass_actionlint():
    workflows = sorted(str(path.relative_to(REPO)) for path in (REPO / ".github/workflows").glob("*.yml"))
    assert len(workflows) == 2, workflows
    result = subprocess.run([VENV_BIN / "actionlint", *workflows], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_newest_releases_are_tested_each_week_as_ci_tests_the_lock():
    """.ci/run with the target test-latest, in the same image as CI's, on a weekly schedule and by hand."""
    weekly = yaml.safe_load((REPO / ".github/workflows/test-latest.yml").read_text())
    triggers = weekly[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    minute, hour, day, month, weekday = triggers["schedule"][0]["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit(), "once a week"
    [job] = weekly["jobs"].values()
    assert job["container"] == WORKFLOW["jobs"]["test"]["container"]
    assert [step["run"] for step in job["steps"] if "run" in step] == ["bash .ci/run test-latest"]
    ci_run = (REPO / ".ci/run").read_text()
    assert "\n  make test-latest\n" in ci_run and "\n  make test\n" in ci_run  # CI's own run stays `make test`


def test_the_workflow_runs_ci_run_and_the_guides_steps_on_macos_and_windows():
    test_job, guide_job = WORKFLOW["jobs"]["test"], WORKFLOW["jobs"]["guide"]
    assert test_job["runs-on"] == "ubuntu-latest"
    assert [step["run"] for step in test_job["steps"] if "run" in step] == ["bash .ci/run"]
    assert guide_job["strategy"]["matrix"]["os"] == ["macos-latest", "windows-latest"]
    commands = "\n".join(step.get("run", "") for step in guide_job["steps"])
    guide = ("pip install -r requirements.txt", TRACKING_SERVER.command, SMOKE_TEST, RUN_NOTEBOOK, INFER_BY_ALIAS)
    for command in (*guide, BATCH_SCORING.before, BATCH_SCORING.command):
        assert command in commands, command
    assert "make " not in commands  # those readers have no make


def pre_commit(checkout, *arguments) -> subprocess.CompletedProcess:
    env = {"PRE_COMMIT_HOME": str(checkout.parent / "pre-commit-home"), "PATH": "/usr/bin:/bin"}
    command = [VENV_BIN / "pre-commit", "run", *arguments]
    return subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def checkout_in_git(fresh_checkout):
    """The fresh copy as a git repository with every file staged: what `pre-commit run` looks at."""
    (fresh_checkout / ".venv").unlink(missing_ok=True)
    (fresh_checkout / ".venv").symlink_to(VENV_BIN.parent)  # the hooks call .venv/bin/ruff, whatever VENV is
    for command in (["git", "init", "--quiet"], ["git", "add", "--all"]):
        subprocess.run(command, cwd=fresh_checkout, check=True)
    return fresh_checkout


def test_pre_commit_passes_on_a_fresh_copy_and_refuses_a_notebook_with_outputs(checkout_in_git):
    result = pre_commit(checkout_in_git, "--all-files")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notebooks are committed without outputs" in result.stdout

    notebook_path = checkout_in_git / "ml_project.ipynb"
    notebook = json.loads(notebook_path.read_text())
    code_cell = next(index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code")
    notebook["cells"][code_cell]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["/home/me\n"]}]
    notebook["cells"][code_cell]["execution_count"] = 1
    notebook_path.write_text(json.dumps(notebook, indent=1))
    subprocess.run(["git", "add", "ml_project.ipynb"], cwd=checkout_in_git, check=True)

    result = pre_commit(checkout_in_git, "--files", "ml_project.ipynb")
    assert result.returncode == 1
    assert f"ml_project.ipynb: code cells [{code_cell}] have outputs" in result.stdout


def test_the_git_checks_pass_in_a_checkout_owned_by_another_user(fresh_checkout):
    """GitHub's container job: .ci/run runs as root in a workspace that the runner's user owns."""
    if os.geteuid() != 0:
        missing_service("giving the copy to another user needs root (CI runs as root)")
    git("init", "--quiet", cwd=fresh_checkout)
    subprocess.run(["chown", "-R", "65534:65534", fresh_checkout], check=True)  # nobody; .venv stays a link
    # The condition itself: plain git refuses this checkout.
    plain = subprocess.run(["git", "check-ignore", ".env"], cwd=fresh_checkout, capture_output=True, text=True)
    assert "dubious ownership" in plain.stderr

    git_checks = [
        "tests/tooling/test_workspace.py::test_the_env_file_vscode_reads_is_ignored_and_the_settings_are_not",
        "tests/team/test_deploy_files.py::test_env_files_with_secrets_are_ignored_by_git",
    ]
    # -n 0: two quick tests, in one process rather than behind xdist's workers.
    command = [VENV_BIN / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "0", *git_checks]
    # The inner run's output must not depend on the caller's options: PYTEST_ADDOPTS=-q would make it -qq, which
    # drops the "2 passed" line.
    env = reader_env(PYTEST_ADDOPTS=None)
    result = subprocess.run(command, cwd=fresh_checkout, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_make_help_lists_the_guides_targets_first_and_the_maintainers_apart():
    result = subprocess.run(["make", "help"], cwd=REPO, env=reader_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    readers, maintainers = result.stdout.split("For who changes this repository (CONTRIBUTING.md):")
    listed = re.compile(r"^  make ([a-z-]+) ", re.MULTILINE)
    assert listed.findall(readers) == [
        "help",
        "setup",
        "doctor",
        "tutorial",
        "serve",
        "batch-spark",
        "test",
        "clean",
        "clean-data",
    ]
    assert set(listed.findall(maintainers)) == {
        "lint",
        "lock",
        "test-latest",
        "mutations",
        "bench",
        "bench-serve",
        "screenshots",
    }
    # Every target of the Makefile is in one list or the other.
    targets = set(re.findall(r"^([a-z-]+):", MAKEFILE, re.MULTILINE))
    assert targets == set(listed.findall(result.stdout))
