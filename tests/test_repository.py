"""The repository: a clean notebook, pinned requirements, current APIs, a README that shows the tested commands."""

import json
import re
import subprocess
import sys
from pathlib import Path

import guide_commands
import pytest
from conftest import REPO, step_env

NOTEBOOK = json.loads((REPO / "ml_project.ipynb").read_text())
README = (REPO / "README.md").read_text()
# The README breaks long shell commands over lines with a trailing backslash; the shell joins them again.
README_COMMANDS = re.sub(r"\s*\\\n\s*", " ", README)


def test_notebook_is_committed_without_outputs():
    for index, cell in enumerate(NOTEBOOK["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"code cell {index} has outputs"
            assert cell["execution_count"] is None, f"code cell {index} has an execution count"


def test_notebook_metadata_has_no_local_paths():
    assert set(NOTEBOOK["metadata"]) <= {"kernelspec", "language_info"}
    text = json.dumps(NOTEBOOK)
    for local in ("/Users/", "/home/", "/root/", "C:\\\\", ".venv/bin"):
        assert local not in text


def test_every_code_cell_follows_a_markdown_cell():
    cells = NOTEBOOK["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert index > 0 and cells[index - 1]["cell_type"] == "markdown", f"code cell {index} has no explanation"


def guide_code():
    """The code a reader runs: the scripts, and the notebook's code cells (its markdown may name old APIs)."""
    code = {path.name: path.read_text() for path in [*REPO.glob("*.py"), *REPO.glob("scripts/*.py")]}
    code["ml_project.ipynb"] = "\n".join("".join(c["source"]) for c in NOTEBOOK["cells"] if c["cell_type"] == "code")
    return code


@pytest.mark.parametrize("deprecated", [r"artifact_path\s*=", r"penalty\s*=", r"transition_model_version_stage"])
def test_code_uses_current_apis(deprecated):
    for name, text in guide_code().items():
        assert not re.search(deprecated, text), f"{name} uses {deprecated}"


@pytest.mark.parametrize("requirements_file", ["requirements.txt", "requirements-dev.txt"])
def test_requirements_are_pinned(requirements_file):
    for line in (REPO / requirements_file).read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement and requirement != "-r requirements.txt":
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^;\s]*(\s*;.+)?", requirement), requirement


@pytest.mark.parametrize(
    "command", [value for name, value in vars(guide_commands).items() if name.isupper() and "{" not in value]
)
def test_readme_shows_the_tested_command(command):
    assert command in README_COMMANDS


@pytest.mark.parametrize(
    "model_path",
    [
        r"mlflow-artifacts:/\d+/models/m-[0-9a-f]{32}/artifacts/MLmodel",
        r"mlartifacts/\d+/models/m-[0-9a-f]{32}/artifacts",
    ],
)
def test_readme_shows_a_model_path_command(model_path):
    assert re.search(r"python model_inferencing\.py " + model_path, README)


def test_readme_opens_with_the_two_commands():
    quickstart = README.split("\n## ")[1]
    assert guide_commands.TUTORIAL in quickstart and guide_commands.TEST in quickstart


def test_every_image_the_readme_shows_exists():
    for image in re.findall(r"\]\((images/[^)\s]+)\)|src=\"(images/[^\"]+)\"", README):
        path = next(part for part in image if part)
        assert (REPO / path).is_file(), path


def test_code_passes_ruff():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([ruff, "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("category", ["DeprecationWarning", "FutureWarning"])
def test_a_deprecation_warning_fails_a_step(category):
    """The warnings rule is live: a step that triggers one of these warnings fails instead of scrolling past it."""
    code = f"import warnings; warnings.warn('this API goes away', {category}); print('still running')"
    result = subprocess.run(
        ["python", "-c", code], env=step_env("http://127.0.0.1:5000"), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"{category}: this API goes away" in result.stderr
    assert "still running" not in result.stdout
