"""What the guide says the UI shows, read from the live UI of the test server in headless Chromium.

Each test compares the page with the server's state as MlflowClient reports it.
"""

import re
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from helpers import REPO, copy_the_data, missing_service
from playwright.sync_api import expect

from maintainer.tracking_server import TrackingServer, running_tracking_server
from tutorial import doctor
from tutorial.names import IRIS_EXPERIMENT, MODEL_NAME

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]  # one worker, one Chromium
SET_UP_SCREENSHOT = Path(tempfile.gettempdir()) / "test_ui-set-up.png"


class UI:
    """The test server's UI in one browser tab."""

    def __init__(self, page, base_url: str, mlflow_ui, closed_on_first_visit: list[str]):
        self.page, self.base_url, self._mlflow_ui = page, base_url, mlflow_ui
        self.closed_on_first_visit = closed_on_first_visit

    def expand_child_runs(self, parent_run_name: str) -> None:
        self._mlflow_ui.expand_child_runs(self.page, parent_run_name)

    def open(self, route: str, wait_for_text: str):
        """Open `#/route`, wait until it shows `wait_for_text`, and return the page."""
        try:
            self._mlflow_ui.go_to(self.page, self.base_url, route, wait_for_text)
        except Exception:
            # What the browser showed instead: the screenshot is the first thing to look at.
            screenshot = Path(tempfile.gettempdir()) / f"test_ui-{route.replace('/', '_')}.png"
            self.page.screenshot(path=screenshot)
            print(f"The page at #/{route} did not show {wait_for_text!r}; screenshot: {screenshot}")
            raise
        return self.page


@contextmanager
def set_up(part: str):
    """Fail the set-up naming the part that failed (the server, Chromium or a page), not with a bare timeout."""
    try:
        yield
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [""])[0]
        pytest.fail(f"the browser tests' set-up failed at {part}: {type(err).__name__}: {first_line}", pytrace=False)


@pytest.fixture(scope="module")
def still_server(tracking_server, notebook_run, unlike_the_champion, tmp_path_factory) -> TrackingServer:
    """A server on a copy of the session server's data: other workers log to that one while a page is compared with
    the client's answers, and each test compares the two on data that stays still."""
    root = tmp_path_factory.mktemp("ui-server")
    copy_the_data(tracking_server.root, root)
    with running_tracking_server(root) as server:
        yield server


@pytest.fixture(scope="module")
def ui(still_server) -> UI:
    """A headless Chromium tab on the test server's UI, in the "Model training" view."""
    try:
        from maintainer import mlflow_ui
    except ImportError:
        missing_service("Playwright is not installed: `make test` installs requirements-dev.txt")
    available, reason = mlflow_ui.browser_is_available()
    if not available:
        missing_service(reason)
    with set_up(f"the tracking server at {still_server.url}"):
        server = doctor.tracking_server(still_server.url)
        assert server.ok, server.message
    with ExitStack() as stack:
        chromium = mlflow_ui.chromium_path() or "Playwright's own"
        with set_up(f"starting Chromium ({chromium})"):
            page = stack.enter_context(mlflow_ui.browser_page(still_server.url))
        with set_up(f"the UI's home page in the Model training view (screenshot: {SET_UP_SCREENSHOT})"):
            try:
                closed = mlflow_ui.open_model_training(page, still_server.url)
            except Exception:
                page.screenshot(path=SET_UP_SCREENSHOT)
                raise
        yield UI(page, still_server.url, mlflow_ui, closed)


def numbers_in(text: str) -> list[float]:
    return [float(number) for number in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def test_a_first_visit_shows_the_two_panels_the_readme_says_to_close(ui):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "close the telemetry notice and the **MLflow Assistant**" in " ".join(readme.split())
    assert ui.closed_on_first_visit == ["telemetry notice", "MLflow Assistant"]


def test_experiments_page_lists_every_experiment_and_its_runs(ui, still_server):
    client = still_server.client()
    experiments = client.search_experiments()
    assert IRIS_EXPERIMENT in [experiment.name for experiment in experiments]

    page = ui.open("experiments", IRIS_EXPERIMENT)
    for experiment in experiments:
        expect(page.get_by_role("link", name=experiment.name, exact=True).first).to_be_visible()

    for experiment in experiments:
        runs = client.search_runs([experiment.experiment_id])
        if not runs:
            continue
        top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
        page = ui.open(f"experiments/{experiment.experiment_id}", top_level[0].info.run_name)
        # A parent run shows its children once unfolded (the sweep's "+").
        for parent_id in {run.data.tags["mlflow.parentRunId"] for run in runs if run not in top_level}:
            ui.expand_child_runs(client.get_run(parent_id).info.run_name)
        names = [run.info.run_name for run in runs]  # a name can repeat: the gate evaluates a champion each time
        # Each waits until the table shows it (a table draws its rows in parts), or fails after the timeout.
        for name in set(names):
            expect(page.get_by_role("link", name=name, exact=True)).to_have_count(names.count(name))
        expect(page.get_by_text(re.compile(rf"^{len(runs)} matching runs?$"))).to_have_count(1)  # "1 matching run"


def test_runs_table_shows_each_runs_datasets(ui, still_server):
    client = still_server.client()
    experiment = client.get_experiment_by_name(IRIS_EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'lr-baseline'")
    datasets = [dataset_input.dataset for dataset_input in run.inputs.dataset_inputs]
    assert sorted(dataset.name for dataset in datasets) == ["iris-test", "iris-train"]
    page = ui.open(f"experiments/{experiment.experiment_id}", "lr-baseline")
    # The table draws a row in parts (the pinned name column apart from the rest); they share a row-index.
    name_part = page.get_by_role("row").filter(has=page.get_by_role("link", name="lr-baseline", exact=True))
    row = page.locator(f"[role=row][row-index='{name_part.get_attribute('row-index')}']")
    for dataset in datasets:  # shown as "name (digest)"
        expect(row.filter(has_text=f"{dataset.name} ({dataset.digest})")).to_have_count(1)


def test_run_page_shows_its_params_and_metrics(ui, still_server):
    client = still_server.client()
    experiment = client.get_experiment_by_name(IRIS_EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'lr-C-1.5'")

    page = ui.open(f"experiments/{experiment.experiment_id}/runs/{run.info.run_id}", "cv_log_loss")
    assert run.data.params and run.data.metrics
    for key, value in run.data.params.items():
        row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))
        expect(row).to_have_count(1)
        assert value in row.inner_text().split(), (key, row.inner_text())
    for key, value in run.data.metrics.items():
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=key, exact=True))
        expect(row).to_have_count(1)
        shown = numbers_in(row.inner_text())
        assert shown and shown[0] == pytest.approx(value, rel=1e-9), (key, row.inner_text())


def test_registry_shows_the_versions_and_the_champion_alias(ui, still_server):
    client = still_server.client()
    versions = sorted(int(version.version) for version in client.search_model_versions(f"name = '{MODEL_NAME}'"))
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert versions == [1, 2, 3]

    page = ui.open(f"models/{MODEL_NAME}", f"Version {versions[-1]}")
    for version in versions:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"Version {version}", exact=True))
        expect(row).to_have_count(1)
        holds_champion = "champion" in row.inner_text()
        assert holds_champion == (str(version) == champion.version), row.inner_text()

    page = ui.open(f"models/{MODEL_NAME}/versions/{champion.version}", "validation_status")
    expect(page.get_by_text(f"Version {champion.version}", exact=True)).to_have_count(1)
    expect(page.get_by_text("champion").first).to_be_visible()
    tag_row = page.get_by_role("row").filter(has=page.get_by_text("validation_status", exact=True))
    assert tag_row.inner_text().split()[:2] == ["validation_status", "approved"]
