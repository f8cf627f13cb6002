"""Step 4: `python model_inferencing.py MODEL` prints the model's predictions for its own input example."""

import time
from pathlib import Path

import mlflow
import pytest
import server_process
from conftest import assert_one_line_error, run_command
from expected_state import MODEL_NAME, expected_predictions, printed_predictions
from guide_commands import INFER_BY_ALIAS, INFER_BY_VERSION, INFER_FROM_FOLDER, INFER_FROM_UI_PATH


def champion_location(tracking_server) -> str:
    """Where the champion's files are, as the UI shows it: mlflow-artifacts:/<exp id>/models/m-<id>/artifacts."""
    client = tracking_server.client()
    model_id = client.get_model_version_by_alias(MODEL_NAME, "champion").source.removeprefix("models:/")
    return client.get_logged_model(model_id).artifact_location


def champion_model_folder(tracking_server) -> Path:
    """The same files on the server's disk, in the mlartifacts/ folder that `mlflow ui` serves."""
    location = champion_location(tracking_server)
    return tracking_server.root / "mlartifacts" / location.removeprefix("mlflow-artifacts:/")


def test_inference_from_the_model_folder(tracking_server, notebook_run):
    folder = champion_model_folder(tracking_server)
    assert folder.relative_to(tracking_server.root).parts[0] == "mlartifacts"
    assert (folder / "MLmodel").is_file() and (folder / "input_example.json").is_file()

    result = run_command(INFER_FROM_FOLDER.format(model_folder=folder), tracking_server.url)

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(str(folder))


def test_inference_from_the_path_the_ui_shows(tracking_server, notebook_run):
    mlmodel_path = champion_location(tracking_server) + "/MLmodel"  # what the UI's copy button copies

    result = run_command(INFER_FROM_UI_PATH.format(ui_path=mlmodel_path), tracking_server.url)

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(str(champion_model_folder(tracking_server)))


@pytest.mark.parametrize("command", [INFER_BY_ALIAS, INFER_BY_VERSION])
def test_inference_from_a_registry_uri(tracking_server, notebook_run, command):
    model_uri = command.split()[-1]
    mlflow.set_tracking_uri(tracking_server.url)

    result = run_command(command, tracking_server.url)

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(model_uri)


def test_no_argument_prints_where_to_copy_the_path_from(tracking_server):
    result = run_command("python model_inferencing.py", tracking_server.url)

    assert_one_line_error(result, "models:/")
    # Where to copy it from: the model's Artifacts tab in the UI, or its folder under mlartifacts/.
    assert '"Artifacts" tab' in result.stdout and "mlflow-artifacts:/" in result.stdout
    assert "mlartifacts/<experiment id>/models/m-<model id>/artifacts" in result.stdout


def test_missing_folder(tracking_server, tmp_path):
    result = run_command(f"python model_inferencing.py {tmp_path / 'no-such-folder'}", tracking_server.url)
    assert_one_line_error(result, "does not exist")


def test_folder_that_is_not_a_model(tracking_server, tmp_path):
    result = run_command(f"python model_inferencing.py {tmp_path}", tracking_server.url)
    assert_one_line_error(result, "not an MLflow model folder")


def test_unknown_model_name(tracking_server):
    result = run_command("python model_inferencing.py models:/no-such-model/1", tracking_server.url)
    assert_one_line_error(result, "no-such-model", "not found")


def test_unreachable_server_fails_fast():
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    result = run_command(INFER_BY_ALIAS, dead_url, timeout=60)
    seconds = time.monotonic() - started

    assert_one_line_error(result, dead_url)
    assert seconds < 3, f"took {seconds:.1f} s to report a missing server"
