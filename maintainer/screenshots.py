"""Make every screenshot in images/ from a live run: what `make screenshots` runs.

It starts a throwaway tracking server (its data in a temp folder), runs the guide's steps
against it, and photographs the UI in headless Chromium at each point the README shows.
Everything it started is stopped at the end, and the repository's own mlflow.db is not touched.
"""

import os
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

from maintainer import mlflow_ui
from maintainer.mlflow_ui import browser_page, open_model_training
from maintainer.tracking_server import running_tracking_server
from tutorial.names import IRIS_EXPERIMENT, MODEL_NAME, SMOKE_TEST_EXPERIMENT
from tutorial.run import run_step
from tutorial.steps import ML_PROJECT, SMOKE_TEST
from tutorial.venv import with_venv_on_path

# A picture waits for charts and tables to finish drawing; the tests wait for what they check instead.
SETTLE_MS = 500


def go_to(page, url: str, route: str, wait_for_text: str) -> None:
    mlflow_ui.go_to(page, url, route, wait_for_text)
    page.wait_for_timeout(SETTLE_MS)


def expand_child_runs(page, parent_run_name: str) -> None:
    mlflow_ui.expand_child_runs(page, parent_run_name)
    page.wait_for_timeout(SETTLE_MS)


IMAGES = Path(__file__).resolve().parent.parent / "images"


def save(page, name: str) -> None:
    page.screenshot(path=IMAGES / name)
    print(f"  images/{name}", flush=True)


def photograph_smoke_test(page, url: str, client: MlflowClient) -> None:
    experiment = client.get_experiment_by_name(SMOKE_TEST_EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id])
    go_to(page, url, f"experiments/{experiment.experiment_id}", run.info.run_name)
    save(page, "02-smoke-test-experiment.png")
    go_to(page, url, f"experiments/{experiment.experiment_id}/runs/{run.info.run_id}", "metric1")
    save(page, "03-smoke-test-run.png")


def photograph_ml_project(page, url: str, client: MlflowClient) -> None:
    experiment = client.get_experiment_by_name(IRIS_EXPERIMENT)
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    best_model_id = champion.source.removeprefix("models:/")
    experiment_route = f"experiments/{experiment.experiment_id}"

    # The runs table: the manual runs, the sweep (folded), the evaluation, with their datasets.
    go_to(page, url, experiment_route, "lr-C-1.5")
    save(page, "04-iris-runs.png")
    expand_child_runs(page, "lr-grid-search")
    save(page, "11-sweep-child-runs.png")

    # The logged model's files, and the path to copy for inference.
    go_to(page, url, f"{experiment_route}/models/{best_model_id}", "Register model")
    page.get_by_role("link", name="Artifacts", exact=True).click()
    page.get_by_text("input_example.json", exact=True).wait_for()
    page.get_by_text("MLmodel", exact=True).click()
    page.get_by_text("Path: mlflow-artifacts:/", exact=False).first.wait_for()
    save(page, "05-logged-model-artifacts.png")

    # The register dialog, as a reader fills it in for the UI way of the Model Registry step (not submitted).
    page.get_by_role("button", name="Register model").click()
    dialog = page.get_by_role("dialog")
    model_picker = dialog.get_by_role("combobox")
    model_picker.wait_for()
    page.wait_for_timeout(500)  # the dialog slides in; a click before it settles lands outside the viewport
    model_picker.click(force=True)
    page.locator(".du-bois-light-select-item-option").filter(has_text=MODEL_NAME).first.click()
    page.wait_for_timeout(300)
    save(page, "10-register-model-dialog.png")
    dialog.get_by_role("button", name="Cancel").click()

    # Compare the three manual runs on the metric that tells them apart: cv_log_loss.
    go_to(page, url, experiment_route, "lr-C-1.5")
    for run_name in ("lr-baseline", "lr-newton-cg", "lr-C-1.5"):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_name, exact=True)).first
        row.get_by_role("checkbox", name="Press Space to toggle row selection").click()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("Metrics:", exact=True).wait_for()
    metric_tags = page.locator(".du-bois-light-select-selection-item")
    metric_tags.filter(has_text="accuracy").locator(".du-bois-light-select-selection-item-remove").click()
    page.get_by_role("combobox").nth(1).click(force=True)
    page.locator(".du-bois-light-select-item-option").filter(has_text="cv_log_loss").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)
    save(page, "06-compare-runs.png")

    def photograph_run_image(run, shown_metric: str, image: str, screenshot: str) -> None:
        """A run's Artifacts tab, with one of its images open."""
        go_to(page, url, f"{experiment_route}/runs/{run.info.run_id}", shown_metric)
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text(image, exact=True).click()
        page.get_by_role("img", name=image).wait_for()
        page.wait_for_timeout(500)
        save(page, screenshot)

    photograph_run_image(runs["lr-C-1.5"], "cv_log_loss", "confusion_matrix.png", "07-confusion-matrix.png")
    # The gate's evaluation run keeps its plots: the ROC curves of the three species.
    evaluation = runs[f"evaluate-v{champion.version}"]
    photograph_run_image(evaluation, "accuracy_score", "roc_curve_plot.png", "12-evaluation-plots.png")

    go_to(page, url, f"models/{MODEL_NAME}", "Version 3")
    save(page, "08-registered-model-versions.png")
    go_to(page, url, f"models/{MODEL_NAME}/versions/{champion.version}", "validation_status")
    save(page, "09-champion-version.png")


def main() -> None:
    started = time.monotonic()
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as temp:
        print("Starting a throwaway tracking server", flush=True)
        with running_tracking_server(Path(temp)) as server:
            url, client = server.url, server.client()
            # The guide's steps, as `make tutorial` runs them, against the throwaway server.
            steps_env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": url})
            with browser_page(url) as page:
                open_model_training(page, url)
                page.get_by_text("Welcome to MLflow").wait_for()
                save(page, "01-empty-server.png")

                run_step(SMOKE_TEST, steps_env)
                photograph_smoke_test(page, url, client)

                run_step(ML_PROJECT, steps_env)
                photograph_ml_project(page, url, client)
    print(f"Done in {time.monotonic() - started:.0f} s. The server is stopped.")


if __name__ == "__main__":
    main()
