"""Inference: `python model_inferencing.py MODEL` prints the model's predictions for its own input example.

Every command runs with model_inferencing.py alone in an empty folder, as a reader who copied it would.
"""

import time
from pathlib import Path

import pytest
from conftest import REPO, SECONDS_NOT_MINUTES, alone_in_a_folder, assert_one_line_error, run_command
from expected_state import MODEL_NAME, expected_predictions, printed_predictions
from guide_commands import INFER_BY_ALIAS, INFER_BY_VERSION, INFER_FROM_FOLDER, INFER_FROM_UI_PATH

from tutorial import server_process
from tutorial.steps import fill_in


def infer(command: str, tracking_uri: str, folder: Path, extra_env: dict | None = None):
    """Run an inference command with model_inferencing.py alone in `folder`."""
    folder = alone_in_a_folder("model_inferencing.py", folder)
    return run_command(command, tracking_uri, cwd=folder, timeout=120, extra_env=extra_env)


def champion_location(tracking_server) -> str:
    """Where the champion's files are, as the UI shows it: mlflow-artifacts:/<exp id>/models/m-<id>/artifacts."""
    client = tracking_server.client()
    model_id = client.get_model_version_by_alias(MODEL_NAME, "champion").source.removeprefix("models:/")
    return client.get_logged_model(model_id).artifact_location


def champion_model_folder(tracking_server) -> Path:
    """The same files on the server's disk, in the mlartifacts/ folder that `mlflow ui` serves."""
    location = champion_location(tracking_server)
    return tracking_server.root / "mlartifacts" / location.removeprefix("mlflow-artifacts:/")


def test_inference_from_the_model_folder(tracking_server, notebook_run, tmp_path):
    folder = champion_model_folder(tracking_server)
    assert folder.relative_to(tracking_server.root).parts[0] == "mlartifacts"
    assert (folder / "MLmodel").is_file() and (folder / "input_example.json").is_file()

    result = infer(fill_in(INFER_FROM_FOLDER, model_folder=str(folder)), tracking_server.url, tmp_path)

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(str(folder))


def test_inference_from_the_path_the_ui_shows(tracking_server, notebook_run, tmp_path):
    mlmodel_path = champion_location(tracking_server) + "/MLmodel"  # what the UI's copy button copies

    result = infer(fill_in(INFER_FROM_UI_PATH, ui_path=mlmodel_path), tracking_server.url, tmp_path)

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(str(champion_model_folder(tracking_server)))


@pytest.mark.parametrize("command", [INFER_BY_ALIAS, INFER_BY_VERSION])
def test_inference_from_a_registry_uri(tracking_server, notebook_run, command, tmp_path, monkeypatch):
    model_uri = command.split()[-1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)  # where this process resolves the URI too

    # As on Windows with the output redirected (`... > log.txt`, or GitHub's Windows job): stdout in cp1252.
    result = infer(command, tracking_server.url, tmp_path, extra_env={"PYTHONIOENCODING": "cp1252"})

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(model_uri)


def test_no_argument_prints_where_to_copy_the_path_from(tracking_server, tmp_path):
    result = infer("python model_inferencing.py", tracking_server.url, tmp_path)

    assert_one_line_error(result, "models:/")
    # Where to copy it from: the model's Artifacts tab in the UI, or its folder under mlartifacts/.
    assert '"Artifacts" tab' in result.stdout and "mlflow-artifacts:/" in result.stdout
    assert "mlartifacts/<experiment id>/models/m-<model id>/artifacts" in result.stdout


def test_missing_folder(tracking_server, tmp_path):
    missing = tmp_path / "no-such-folder"
    result = infer(f"python model_inferencing.py {missing}", tracking_server.url, tmp_path / "step")
    assert_one_line_error(result, f"error: {missing} does not exist")


def test_folder_that_is_not_a_model(tracking_server, tmp_path):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    result = infer(f"python model_inferencing.py {not_a_model}", tracking_server.url, tmp_path / "step")
    assert_one_line_error(result, "not an MLflow model folder")


def test_unknown_model_name(tracking_server, tmp_path):
    result = infer("python model_inferencing.py models:/no-such-model/1", tracking_server.url, tmp_path)
    assert_one_line_error(result, "no-such-model", "not found")


def test_unreachable_server_fails_fast(tmp_path):
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    result = infer(INFER_BY_ALIAS, dead_url, tmp_path)
    seconds = time.monotonic() - started

    assert_one_line_error(result, dead_url)
    assert seconds < SECONDS_NOT_MINUTES, f"took {seconds:.1f} s to report a missing server"


def test_the_readme_shows_the_error_lines_as_printed(tracking_server, tmp_path):
    """The README's sample error lines for a missing folder and an unknown model are the lines the script prints."""
    readme = (REPO / "README.md").read_text()
    for model in ("mlartifacts/2/models/m-oops/artifacts", "models:/no-such-model/1"):
        result = infer(f"python model_inferencing.py {model}", tracking_server.url, tmp_path / model.replace("/", "_"))
        [error_line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert f"\n{error_line}\n" in readme, error_line
