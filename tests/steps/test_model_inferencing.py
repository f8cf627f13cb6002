"""Inference: `python model_inferencing.py MODEL` prints the model's predictions for its own input example.

Every command runs with model_inferencing.py alone in an empty folder, as a reader who copied it would.
"""

import time
from pathlib import Path

import mlflow
import pytest
from expected_state import expected_predictions, printed_predictions
from guide_commands import INFER_BY_ALIAS, INFER_BY_ID, INFER_BY_VERSION, INFER_FROM_FOLDER, INFER_FROM_UI_PATH
from helpers import (
    REPO,
    SECONDS_NOT_MINUTES,
    alone_in_a_folder,
    assert_one_line_error,
    assert_readme_shows,
    champion_folder,
    port_of,
    run_command,
)

from tutorial import server_process
from tutorial.names import MODEL_NAME
from tutorial.steps import fill_in


def infer(command: str, tracking_uri: str, folder: Path, extra_env: dict | None = None):
    """Run an inference command with model_inferencing.py alone in `folder`."""
    folder = alone_in_a_folder("model_inferencing.py", folder)
    return run_command(command, tracking_uri, cwd=folder, timeout=120, extra_env=extra_env)


def champion_predictions(tracking_server) -> list:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
        return expected_predictions(f"models:/{MODEL_NAME}@champion")


def folder_on_disk(tracking_server, artifact_location: str) -> Path:
    """A model's files on the server's disk, in the mlartifacts/ folder that `mlflow ui` serves."""
    return tracking_server.root / "mlartifacts" / artifact_location.removeprefix("mlflow-artifacts:/")


def assert_prints_the_predictions_of(result, unlike_the_champion, champion: list) -> None:
    """The model asked for, not the champion: its predictions tell the two apart."""
    assert result.returncode == 0, result.stderr
    assert unlike_the_champion.predictions != champion  # what makes this check able to fail
    assert printed_predictions(result.stdout) == unlike_the_champion.predictions


def test_inference_from_the_model_folder(tracking_server, unlike_the_champion, tmp_path):
    folder = folder_on_disk(tracking_server, unlike_the_champion.artifact_location)
    assert folder.relative_to(tracking_server.root).parts[0] == "mlartifacts"
    assert (folder / "MLmodel").is_file() and (folder / "input_example.json").is_file()

    result = infer(fill_in(INFER_FROM_FOLDER, model_folder=str(folder)), tracking_server.url, tmp_path)

    assert_prints_the_predictions_of(result, unlike_the_champion, champion_predictions(tracking_server))


def test_inference_from_the_path_the_ui_shows(tracking_server, unlike_the_champion, tmp_path):
    mlmodel_path = unlike_the_champion.artifact_location + "/MLmodel"  # what the UI's copy button copies

    result = infer(fill_in(INFER_FROM_UI_PATH, ui_path=mlmodel_path), tracking_server.url, tmp_path)

    assert_prints_the_predictions_of(result, unlike_the_champion, champion_predictions(tracking_server))


@pytest.mark.parametrize("way", ["id", "version", "alias"])
def test_inference_from_a_model_uri_loads_that_model(tracking_server, unlike_the_champion, way, tmp_path):
    commands = {
        "id": fill_in(INFER_BY_ID, model_id=unlike_the_champion.model_id.removeprefix("m-")),
        "version": INFER_BY_VERSION.replace(f"models:/{MODEL_NAME}/2", unlike_the_champion.version_uri),
        "alias": INFER_BY_ALIAS.replace(f"models:/{MODEL_NAME}@champion", unlike_the_champion.alias_uri),
    }
    assert commands[way].startswith("python model_inferencing.py models:/")

    result = infer(commands[way], tracking_server.url, tmp_path)

    assert_prints_the_predictions_of(result, unlike_the_champion, champion_predictions(tracking_server))


@pytest.mark.parametrize("command", [INFER_BY_ALIAS, INFER_BY_VERSION])
def test_the_readmes_registry_commands(tracking_server, notebook_run, command, tmp_path, monkeypatch):
    """The README's own commands, on the notebook's versions (which agree on the input example: the test above
    tells models apart)."""
    model_uri = command.split()[-1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)  # where this process resolves the URI too

    # As on Windows with the output redirected (`... > log.txt`, or GitHub's Windows job): stdout in cp1252.
    result = infer(command, tracking_server.url, tmp_path, extra_env={"PYTHONIOENCODING": "cp1252"})

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == expected_predictions(model_uri)


def test_the_readmes_sample_output_is_what_a_notebook_model_prints(tracking_server, notebook_run, tmp_path):
    """Every model the notebook logs predicts the same on its input example, so the README's sample holds for each:
    here the champion's folder, which the README's example path stands for."""
    readme_folder = "mlartifacts/2/models/m-12100ede7512460aa6c7b33af1f72143/artifacts"
    folder = champion_folder(tracking_server)

    result = infer(fill_in(INFER_FROM_FOLDER, model_folder=str(folder)), tracking_server.url, tmp_path)

    assert result.returncode == 0, result.stderr
    readme_command = fill_in(INFER_FROM_FOLDER, model_folder=readme_folder)
    assert_readme_shows(readme_command, result.stdout.replace(str(folder), readme_folder), port_of(tracking_server.url))


def test_help_says_where_to_copy_the_path_from(tmp_path):
    result = infer("python model_inferencing.py --help", "http://127.0.0.1:1", tmp_path)

    assert result.returncode == 0, result.stderr
    # Where to copy it from: the model's Artifacts tab in the UI, or its folder under mlartifacts/.
    assert '"Artifacts" tab' in result.stdout and "mlflow-artifacts:/" in result.stdout
    assert "mlartifacts/<experiment id>/models/m-<model id>/artifacts" in result.stdout


def test_no_argument_asks_for_the_model(tmp_path):
    result = infer("python model_inferencing.py", "http://127.0.0.1:1", tmp_path)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("error: the following arguments are required: MODEL")


def test_a_folder_that_is_not_here_is_named_with_the_folder_it_was_looked_for_in(tracking_server, tmp_path):
    """The README's folder, typed in another folder than the one `mlflow ui` runs in: no server is to blame."""
    folder = "mlartifacts/2/models/m-12100ede7512460aa6c7b33af1f72143/artifacts"  # the README's example
    result = infer(fill_in(INFER_FROM_FOLDER, model_folder=folder), tracking_server.url, tmp_path / "elsewhere")

    assert_one_line_error(result, f"error: there is no folder {folder} in {tmp_path / 'elsewhere'}", "mlflow ui")
    assert "make doctor" not in result.stderr


def test_a_typo_in_the_uis_path_keeps_the_reason_line(tracking_server, unlike_the_champion, tmp_path):
    """MLflow's message starts with a header that ends with ':'; the line after it says 404, no such artifact."""
    typo = unlike_the_champion.artifact_location.replace("/models/m-", "/models/m-oops") + "/MLmodel"
    result = infer(f"python model_inferencing.py {typo}", tracking_server.url, tmp_path)
    assert_one_line_error(result, "The following failures occurred", "404", "No such artifact", "make doctor")


def test_folder_that_is_not_a_model(tracking_server, tmp_path):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    result = infer(f"python model_inferencing.py {not_a_model}", tracking_server.url, tmp_path / "step")
    assert_one_line_error(result, f"cannot load {not_a_model}", "MLmodel")


def test_a_model_saved_without_an_input_example_says_so(tracking_server, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    features, species = load_iris(return_X_y=True)
    folder = tmp_path / "no-example"
    mlflow.sklearn.save_model(DummyClassifier().fit(features, species), folder, pip_requirements=["scikit-learn"])

    result = infer(f"python model_inferencing.py {folder}", tracking_server.url, tmp_path / "step")

    assert_one_line_error(result, f"cannot load {folder}", "logged without an input example")


def test_unknown_model_name(tracking_server, tmp_path):
    result = infer("python model_inferencing.py models:/no-such-model/1", tracking_server.url, tmp_path)
    assert_one_line_error(result, "no-such-model", "not found", "the server the notebook logged to", "make doctor")


def test_unreachable_server_fails_fast_with_one_line_that_points_to_make_doctor(tmp_path):
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    result = infer(INFER_BY_ALIAS, dead_url, tmp_path)
    seconds = time.monotonic() - started

    assert_one_line_error(result, dead_url, "make doctor")
    assert seconds < SECONDS_NOT_MINUTES, f"took {seconds:.1f} s to report a missing server"


def test_a_registered_model_in_a_local_sqlite_store_needs_no_server(tmp_path, monkeypatch):
    """A copy of the lesson in a project that tracks to sqlite:///, with the model's files on its disk."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    features, species = load_iris(return_X_y=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    experiment_id = mlflow.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.sklearn.log_model(
            DummyClassifier(strategy="constant", constant=2).fit(features, species),
            name="always_virginica",
            input_example=features[:5],
            pip_requirements=["scikit-learn"],
            registered_model_name="local-model",
        )

    result = infer("python model_inferencing.py models:/local-model/1", uri, tmp_path / "project")

    assert result.returncode == 0, result.stderr
    assert printed_predictions(result.stdout) == [2] * 5


def test_the_readme_shows_the_error_lines_as_printed(tracking_server, tmp_path):
    """The README's sample error lines for a missing folder and an unknown model are the lines the script prints."""
    readme = (REPO / "README.md").read_text()
    for model in ("mlartifacts/2/models/m-oops/artifacts", "models:/no-such-model/1"):
        result = infer(f"python model_inferencing.py {model}", tracking_server.url, tmp_path / model.replace("/", "_"))
        [error_line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        error_line = error_line.replace(str(tmp_path / model.replace("/", "_")), "/home/you/mlflow-starter")
        assert f"\n{error_line}\n" in readme, error_line
