"""The repository's code, read without running it: a clean notebook, current APIs, teaching files that stand alone,
the warnings rule and its exemptions, and nothing that points outside the repository."""

import ast
import json
import re
import subprocess
import sys

import pytest
from helpers import REPO, git, step_env

from tutorial.names import (
    BATCH_EXPERIMENT,
    CHAMPION_URI,
    IRIS_EXPERIMENT,
    MODEL_NAME,
    SMOKE_TEST_EXPERIMENT,
    TRACKING_PORT,
)
from tutorial.venv import VENV_BIN

NOTEBOOK = json.loads((REPO / "ml_project.ipynb").read_text())
TEACHING_FILES = ["get_started.py", "model_inferencing.py", "ml_project.ipynb"]


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
    paths = [*REPO.glob("*.py"), *REPO.glob("tutorial/*.py"), *REPO.glob("maintainer/*.py")]
    # The bench's baseline replays the original, pre-MLflow 3 guide on purpose, old APIs and all.
    paths.remove(REPO / "maintainer/original_guide.py")
    code = {str(path.relative_to(REPO)): path.read_text() for path in paths}
    code["ml_project.ipynb"] = "\n".join("".join(c["source"]) for c in NOTEBOOK["cells"] if c["cell_type"] == "code")
    return code


# scikit-learn's penalty= (deprecated in 1.8), as a keyword or as a key of a params dict; and stages.
@pytest.mark.parametrize("deprecated", [r"\bpenalty\s*=", r"[\"']penalty[\"']\s*:", r"transition_model_version_stage"])
def test_code_uses_current_apis(deprecated):
    for name, text in guide_code().items():
        assert not re.search(deprecated, text), f"{name} uses {deprecated}"


def calls_to(function: str, source: str) -> list[ast.Call]:
    """Every call of `function` in `source`, as `function(...)` or `anything.function(...)`."""
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and function in (getattr(node.func, "attr", None), getattr(node.func, "id", None))
    ]


def test_every_log_model_call_passes_the_model_and_a_name():
    """MLflow 3's signature: log_model(model, name=...). A second positional argument is artifact_path, deprecated,
    and MLflow reports that through its logger, not as a warning the warnings rule would catch."""
    calls = 0
    for file_name, source in guide_code().items():
        for call in calls_to("log_model", source):
            calls += 1
            keywords = {keyword.arg for keyword in call.keywords}
            where = f"{file_name}, line {call.lineno}"
            assert len(call.args) + len(keywords & {"sk_model", "python_model", "model"}) == 1, where
            assert "name" in keywords and "artifact_path" not in keywords, where
    assert calls, "no log_model call found: the check looks at nothing"


def teaching_code() -> dict[str, str]:
    return {name: source for name, source in guide_code().items() if name in TEACHING_FILES}


def test_every_run_in_the_teaching_files_names_its_experiment_or_its_run():
    """The race guard: a bare start_run() logs to Default when set_experiment lost the race to create the
    experiment (steps/test_tracking_server.py makes that race happen)."""
    calls = 0
    for file_name, source in teaching_code().items():
        for call in calls_to("start_run", source):
            calls += 1
            keywords = {keyword.arg for keyword in call.keywords}
            assert keywords & {"experiment_id", "run_id"}, f"{file_name}, line {call.lineno}: a bare start_run()"
    assert calls >= 5, "fewer start_run calls than the smoke test and the notebook make"


@pytest.mark.parametrize("teaching_file", TEACHING_FILES)
def test_teaching_file_imports_nothing_from_this_repository(teaching_file):
    """A reader can copy the file alone into another project (the step tests also run each one alone)."""
    if teaching_file.endswith(".ipynb"):
        code = [cell for cell in json.loads((REPO / teaching_file).read_text())["cells"] if cell["cell_type"] == "code"]
        source = "\n".join("".join(cell["source"]) for cell in code)
    else:
        source = (REPO / teaching_file).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    ours = {path.stem for path in REPO.glob("*.py")} | {path.name for path in REPO.iterdir() if path.is_dir()}
    assert not imported & ours, f"{teaching_file} imports {imported & ours} from this repository"


def test_the_teaching_files_spell_out_the_names_the_tooling_shares():
    """Each teaching file types its names in plain sight, since it stands alone; the tooling and the tests read the
    same names from tutorial/names.py, and this keeps the two spellings equal."""
    code = teaching_code()
    assert f'mlflow.set_experiment("{SMOKE_TEST_EXPERIMENT}")' in code["get_started.py"]
    assert f'"{IRIS_EXPERIMENT}"' in code["ml_project.ipynb"]
    assert f'mlflow.set_experiment("{BATCH_EXPERIMENT}")' in (REPO / "batch_scoring.py").read_text()
    assert f'MODEL_NAME = "{MODEL_NAME}"' in code["ml_project.ipynb"]
    assert CHAMPION_URI == f"models:/{MODEL_NAME}@champion" and '"champion"' in code["ml_project.ipynb"]
    for file_name, source in code.items():
        assert f"http://127.0.0.1:{TRACKING_PORT}" in source, f"{file_name} has another default server"


@pytest.mark.parametrize("script, most_lines", [("get_started.py", 40), ("model_inferencing.py", 70)])
def test_the_lessons_are_short(script, most_lines):
    """A lesson is its MLflow calls; what protects the reader lives in tutorial/ (make doctor)."""
    lines = len((REPO / script).read_text().splitlines())
    assert lines <= most_lines, f"{script} has {lines} lines: move what is not the lesson to tutorial/doctor.py"


@pytest.mark.parametrize("teaching_file", TEACHING_FILES)
def test_the_lessons_carry_no_http_client_of_their_own(teaching_file):
    """They fail fast with MLflow's own retry setting; `make doctor` does the talking to the server."""
    tree = ast.parse(teaching_code()[teaching_file])
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name.split(".")[0] for name in imported} & {"urllib", "ssl", "socket", "http", "requests"}


def test_code_passes_ruff():
    ruff = VENV_BIN / "ruff"
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


# pandas 3's Pandas4Warnings (DeprecationWarnings) that MLflow's and pyspark's own code raises, as pandas words them.
RANGE_WARNING = (
    "Operation with range is deprecated. In a future version these will be treated as scalar-like. To retain the old"
    " behavior, explicitly wrap in a Series instead."
)
DROP_INPLACE_WARNING = "The inplace keyword in DataFrame.drop is deprecated and will be removed in a future version."
ALL_WARNING = "Starting with pandas version 4.0 all arguments of all will be keyword-only."
COPY_WARNING = "The copy keyword is deprecated and will be removed in a future version. Copy-on-Write is active."


@pytest.mark.parametrize(
    "module, message, exempt",
    [
        (
            "mlflow.store.tracking.sqlalchemy_store",
            "The ``noload`` loader strategy is deprecated and will be removed "
            "in a future release.  This option produces incorrect results by returning ``None`` for related items. "
            "(deprecated since: 2.1)",
            True,
        ),
        (
            "get_started",
            "The ``noload`` loader strategy is deprecated and will be removed in a future release.  This "
            "option produces incorrect results by returning ``None`` for related items.",
            False,
        ),
        ("tornado.ioloop", "There is no current event loop", True),
        ("get_started", "There is no current event", False),
        ("get_started", "`y_pred` was renamed to `y_proba` in version 1.9 and will be removed in 1.11.", False),
        ("mlflow.models.utils", RANGE_WARNING, True),
        ("batch_scoring", RANGE_WARNING, False),
        ("mlflow.data.digest_utils", ALL_WARNING, True),
        ("mlflow.data.evaluation_dataset", DROP_INPLACE_WARNING, True),
        ("batch_scoring", DROP_INPLACE_WARNING, False),
        ("pyspark.sql.pandas.types", COPY_WARNING, True),
        ("batch_scoring_spark", COPY_WARNING, False),
    ],
    ids=[
        "noload-from-mlflow",
        "noload-from-our-code",
        "event-loop",
        "event-loop-shortened",
        "y_pred",
        "range-from-mlflow",
        "range-from-our-code",
        "all-from-mlflow",
        "drop-inplace-from-mlflow",
        "drop-inplace-from-our-code",
        "copy-from-pyspark",
        "copy-from-our-code",
    ],
)
def test_the_warning_exemptions_are_no_wider_than_their_message_and_module(module, message, exempt):
    """A step's DeprecationWarning or FutureWarning is an error, except the exact ones helpers.py lists."""
    category = "FutureWarning" if "y_pred" in message else "DeprecationWarning"
    code = (
        "import warnings\n"
        f"warnings.warn_explicit({message!r}, {category}, 'library.py', 1, module={module!r})\n"
        "print('still running')"
    )
    result = subprocess.run([sys.executable, "-c", code], env=step_env("http://127.0.0.1:5000"), capture_output=True)
    assert (result.returncode == 0) == exempt, result.stderr


def test_the_testing_page_lists_every_edit_that_make_mutations_makes():
    from maintainer.mutations import MUTATIONS

    page = (REPO / "maintainer/docs/testing.md").read_text()
    rows = re.findall(r"^\| (.+) \| `(\S+::test_\S+)` \|$", page.split("## Proof by breaking")[1], re.MULTILINE)
    assert rows == [(m.what, m.caught_by.removeprefix("tests/")) for m in MUTATIONS]


def test_no_test_sets_mlflows_tracking_uri_in_its_own_process():
    """mlflow.set_tracking_uri() outlasts the test that calls it, and sends the worker's later tests to its server:
    the tests set MLFLOW_TRACKING_URI with monkeypatch. A client process of its own (concurrent_logging.py) may."""
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name != "concurrent_logging.py":
            assert not re.search(r"set_tracking_uri\([^)]", path.read_text()), path  # a call, not its name


def test_no_file_points_outside_the_repository():
    """A clone has nothing beside it: no file may cite the workplace folder that sits beside this checkout."""
    tracked = git("ls-files").stdout.split()
    outside = "../" + "shared"  # spelled in two parts, so that this file does not cite it
    files = [REPO / name for name in tracked if (REPO / name).suffix in {".py", ".md", ".ipynb", ".yml", ".toml", ""}]
    assert files, "git ls-files listed nothing"
    citing = [
        str(path.relative_to(REPO)) for path in files if path.is_file() and outside in path.read_text(errors="replace")
    ]
    assert not citing, citing


def test_every_repository_path_a_file_names_exists():
    """A page or a comment that names docs/..., maintainer/..., tutorial/..., deploy/... or tests/... names a file or
    folder that is there: a page that moved takes its name with it."""
    named = set()
    for name in git("ls-files").stdout.split():
        path = REPO / name
        if path.suffix in {".py", ".md", ".ipynb", ".in", ".yml", ".toml", ".json", ""} and path.is_file():
            text = path.read_text(errors="replace")
            named |= set(re.findall(r"(?<![\w./-])((?:docs|maintainer|tutorial|deploy|tests)/[\w./-]*\w)", text))
    assert len(named) >= 20, named
    # What docs/team-server.md has the operator make in deploy/ (git ignores them), and what the tests write there.
    written_by_the_operator = ("deploy/.env", "deploy/certs", "deploy/backup", "deploy/certbot-webroot")
    missing = sorted(
        name for name in named if not name.startswith(written_by_the_operator) and not (REPO / name).exists()
    )
    assert not missing, missing


def test_every_test_a_file_names_exists():
    """Comments, pages and the mutations name tests by path (tests/steps/test_serving.py) and node id (::test_...);
    a test that moved or was renamed must take those names with it."""
    named = set()
    for name in git("ls-files").stdout.split():
        path = REPO / name
        if path.suffix in {".py", ".md", ".yml", ".toml", ".conf", ".txt", ""} and path.is_file():
            named |= set(re.findall(r"\b(tests/[\w/]+\.py)(?:::(test_\w+))?", path.read_text(errors="replace")))
    assert len(named) >= 10, named
    for test_file, test_name in named:
        assert (REPO / test_file).is_file(), f"{test_file} does not exist"
        if test_name:
            assert f"def {test_name}(" in (REPO / test_file).read_text(), f"{test_file} has no {test_name}"
